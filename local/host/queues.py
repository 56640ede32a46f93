"""Queue triggers with Azure Functions semantics, against Azurite (or any storage account).

Per queue-triggered function, one poller thread: receive up to ``batchSize`` messages
(hidden for the invocation's duration), run each in a small pool, delete on success.
On failure the message is made visible again after ``visibilityTimeout``, so its
``dequeue_count`` grows; once a failed attempt has ``dequeue_count >=
maxDequeueCount`` the message moves, body unchanged, to ``<queue>-poison``. A message
that is not valid base64 (with ``messageEncoding: base64``) cannot be handed to the
function at all and goes straight to poison, as on Azure. Idle polling backs off from
100 ms, doubling up to ``maxPollingInterval``, and resets as soon as messages arrive.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import azure.functions.queue as funcq
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import QueueClient, QueueMessage

from local.host.config import FunctionInfo, QueueOptions

log = logging.getLogger("local.host.queues")

Invoke = Callable[[FunctionInfo, funcq.QueueMessage], Any]


def queue_client(connection_string: str, name: str) -> QueueClient:
    """A raw-text client: encoding is done here, exactly as the Functions host does it."""
    return QueueClient.from_connection_string(
        connection_string, name, retry_total=2, connection_timeout=5, read_timeout=30
    )


def ensure_queue(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


class QueueListener:
    """Runs one queue-triggered function."""

    def __init__(
        self,
        function: FunctionInfo,
        queue_name: str,
        connection_string: str,
        options: QueueOptions,
        invoke: Invoke,
    ) -> None:
        self.function = function
        self.queue_name = queue_name
        self.options = options
        self._invoke = invoke
        self._client = queue_client(connection_string, queue_name)
        self._poison = queue_client(connection_string, f"{queue_name}-poison")
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._inflight = 0
        self._pending: dict[Future[None], QueueMessage] = {}
        self._pool = ThreadPoolExecutor(max_workers=options.batch_size, thread_name_prefix=f"q-{queue_name}")
        self._thread = threading.Thread(target=self._run, name=f"poll-{queue_name}", daemon=True)

    def start(self) -> None:
        ensure_queue(self._client)
        ensure_queue(self._poison)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, hand back messages not yet started, wait for running invocations."""
        self._stop.set()
        with self._idle:
            self._idle.notify_all()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        for future, message in list(self._pending.items()):
            if future.cancel():
                self._release(message)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
        self._poison.close()

    # -- polling ---------------------------------------------------------------

    def _run(self) -> None:
        opts = self.options
        delay = opts.min_polling_interval
        while not self._stop.is_set():
            with self._idle:
                while self._inflight > opts.threshold and not self._stop.is_set():
                    self._idle.wait(timeout=0.5)
            if self._stop.is_set():
                return
            wanted = max(1, min(32, opts.batch_size - self._inflight))
            try:
                messages = list(
                    self._client.receive_messages(
                        messages_per_page=wanted,
                        max_messages=wanted,
                        visibility_timeout=math.ceil(opts.receive_visibility),
                    )
                )
            except AzureError as exc:
                log.warning("queue %s: receive failed (%s); retrying", self.queue_name, type(exc).__name__)
                messages = []
            if messages:
                delay = opts.min_polling_interval
                for message in messages:
                    self._submit(message)
                continue
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, max(opts.max_polling_interval, opts.min_polling_interval))

    def _submit(self, message: QueueMessage) -> None:
        with self._idle:
            self._inflight += 1
        future = self._pool.submit(self._process, message)
        self._pending[future] = message
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        self._pending.pop(future, None)
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    # -- one message -----------------------------------------------------------

    def _process(self, message: QueueMessage) -> None:
        opts = self.options
        count = int(message.dequeue_count or 1)
        if count > opts.max_dequeue_count:
            self._to_poison(message, "dequeue count already over maxDequeueCount")
            return
        body = self._decode(message)
        if body is None:
            self._to_poison(message, "the message is not valid base64")
            return
        trigger = funcq.QueueMessage(
            id=message.id,
            body=body,
            dequeue_count=count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        try:
            self._invoke(self.function, trigger)
        except Exception:
            log.exception(
                "function %s failed on message %s (attempt %d of %d)",
                self.function.name,
                message.id,
                count,
                opts.max_dequeue_count,
            )
            if count >= opts.max_dequeue_count:
                self._to_poison(message, f"failed {count} times")
            else:
                self._retry_later(message)
            return
        try:
            self._client.delete_message(message)
        except AzureError as exc:
            log.warning("queue %s: could not delete message %s (%s)", self.queue_name, message.id, type(exc).__name__)

    def _decode(self, message: QueueMessage) -> bytes | None:
        content: Any = message.content
        raw = content if isinstance(content, bytes) else str(content or "").encode("utf-8")
        if self.options.message_encoding == "none":
            return raw
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None

    def _retry_later(self, message: QueueMessage) -> None:
        try:
            self._client.update_message(message, visibility_timeout=math.ceil(self.options.visibility_timeout))
        except AzureError as exc:
            log.warning("queue %s: could not reschedule %s (%s)", self.queue_name, message.id, type(exc).__name__)

    def _release(self, message: QueueMessage) -> None:
        try:
            self._client.update_message(message, visibility_timeout=0)
        except AzureError:
            log.debug("queue %s: could not release %s on stop", self.queue_name, message.id)

    def _to_poison(self, message: QueueMessage, why: str) -> None:
        log.error("queue %s: moving message %s to %s-poison (%s)", self.queue_name, message.id, self.queue_name, why)
        try:
            self._poison.send_message(message.content)
            self._client.delete_message(message)
        except AzureError as exc:
            log.warning("queue %s: could not move %s to poison (%s)", self.queue_name, message.id, type(exc).__name__)
