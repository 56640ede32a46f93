"""Calling a user function the way the Python worker does: keyword arguments named by bindings.

Supports sync and ``async def`` functions, an optional ``context`` parameter, and
queue output bindings (``func.Out`` parameters or a ``$return`` queue binding), which
are sent only when the invocation succeeds - as on Azure.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func

from local.host.config import FunctionInfo


class _Context(func.Context):
    """The invocation context handed to functions that declare a ``context`` parameter."""

    def __init__(self, function_name: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._tls = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return os.getcwd()

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


class _Out(func.Out[Any]):
    """A settable output binding value."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


QueueSender = Callable[[str, list[str]], None]
"""Sends already-encoded message texts to a queue (by resolved name)."""


def invoke(
    fn: FunctionInfo,
    trigger_value: Any,
    *,
    queue_names: Mapping[str, str],
    send: QueueSender | None,
    encode_base64: bool = True,
) -> Any:
    """Run ``fn`` with its trigger value; deliver queue outputs on success; return its result."""
    kwargs: dict[str, Any] = {fn.trigger.name: trigger_value}
    outs: dict[str, _Out] = {}
    for binding in fn.outputs:
        if binding.name == "$return":
            continue
        outs[binding.name] = _Out()
        kwargs[binding.name] = outs[binding.name]
    if fn.wants_context:
        kwargs["context"] = _Context(fn.name)
    result = fn.call(**kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    for binding in fn.outputs:
        if binding.type != "queue":
            continue
        value = result if binding.name == "$return" else outs[binding.name].get()
        if value is None:
            continue
        if send is None:
            raise RuntimeError(f"function {fn.name} has a queue output but the host has no storage")
        items = value if isinstance(value, list) else [value]
        texts = [_message_text(item, encode_base64) for item in items]
        send(queue_names[binding.name], texts)
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _message_text(item: Any, encode_base64: bool) -> str:
    raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
    if encode_base64:
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8")
