"""CommandQueue on Azure Queue Storage (azure-storage-queue), read by queue-triggered functions.

Messages are compact UTF-8 JSON, base64-encoded: the Functions queue trigger expects
base64 by default (host.json says ``messageEncoding: base64``), and a plain base64
decode + ``json.loads`` is all a consumer needs.

Time to live: ``-1`` (never expires). The service default of 7 days would silently
drop a command nobody processed (a stopped function app, a long outage), and the
architecture promises failures end in a visible state, never a silent drop. Poison
handling stays with the Functions host (``maxDequeueCount`` -> ``<queue>-poison``).

Queues are created on first send (``QueueNotFound`` -> create, retry once);
``ensure_queues`` creates them and their poison queues up front for the local host.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import LinearRetry, QueueClient, QueueServiceClient, TextBase64EncodePolicy

from core.adapters.azure_errors import error_code, translate_storage_error
from core.adapters.rules import serialize_command
from core.names import Queues
from core.ports import CommandQueue
from core.settings import StorageSettings

log = logging.getLogger(__name__)

MESSAGE_TIME_TO_LIVE = -1  # never expire: see the module docstring

# Fail fast and let the caller (or the trigger's own retry) decide: the storage SDK's
# default exponential retry waits 15 s before its first retry. Three retries about a
# second apart give up within ~5 s.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 10, "use_env_settings": False}
# use_env_settings=False: no proxy/CA lookups in the process environment on every call (about
# 0.4 ms of CPU per request on the webhook path); Functions hosts use no proxy for storage.
DEFAULT_RETRY: dict[str, Any] = {"backoff": 1, "retry_total": 3, "random_jitter_range": 1}
PING_OPTIONS: dict[str, Any] = {"connection_timeout": 2, "read_timeout": 3, "retry_total": 0}


class AzureCommandQueue:
    """The CommandQueue port over one storage account's Queue service."""

    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}
        self._known_queues: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, storage: StorageSettings, **client_options: Any) -> AzureCommandQueue:
        """A connection string (Azurite, local) wins; otherwise the queue endpoint with managed identity."""
        retry = {**DEFAULT_RETRY, **{k: client_options.pop(k) for k in list(client_options) if k in DEFAULT_RETRY}}
        options: dict[str, Any] = {
            **DEFAULT_CLIENT_OPTIONS,
            "retry_policy": LinearRetry(**retry),
            "message_encode_policy": TextBase64EncodePolicy(),
            **client_options,
        }
        if storage.connection_string:
            return cls(QueueServiceClient.from_connection_string(storage.connection_string, **options))
        if not storage.queue_uri:
            raise ValueError("storage settings have neither a connection string nor a queue endpoint")
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential(client_id=storage.client_id)
        return cls(QueueServiceClient(account_url=storage.queue_uri, credential=credential, **options))

    @classmethod
    def from_connection_string(cls, connection_string: str, **client_options: Any) -> AzureCommandQueue:
        return cls.from_settings(StorageSettings(connection_string, None, None, None), **client_options)

    def send(self, queue: str, message: Mapping[str, Any], *, delay_seconds: float = 0) -> None:
        text = serialize_command(message, delay_seconds)  # ValueError before anything is sent
        visibility = math.ceil(delay_seconds) if delay_seconds > 0 else None
        client = self._client(queue)
        try:
            try:
                self._send(client, text, visibility)
                return
            except ResourceNotFoundError as exc:
                if error_code(exc) != "QueueNotFound":
                    raise
            log.info("creating queue %s on first send", queue)
            with self._lock:
                self._known_queues.discard(queue)
            self.ensure_queue(queue)
            self._send(client, text, visibility)
        except AzureError as exc:
            raise translate_storage_error(exc, "queue send") from exc

    def ping(self) -> None:
        """Read the properties of one known queue (``access-tests``; the identity is granted per queue, so never
        an account-level listing). A missing queue still means the queue service answered."""
        try:
            self._client(Queues.ACCESS_TESTS).get_queue_properties(**PING_OPTIONS)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate_storage_error(exc, "queue ping") from exc

    def ensure_queue(self, queue: str) -> None:
        """Create ``queue`` unless this process already knows it exists."""
        if queue in self._known_queues:
            return
        try:
            self._client(queue).create_queue()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise translate_storage_error(exc, "create queue") from exc
        with self._lock:
            self._known_queues.add(queue)

    @staticmethod
    def _send(client: QueueClient, text: str, visibility: int | None) -> None:
        client.send_message(text, visibility_timeout=visibility, time_to_live=MESSAGE_TIME_TO_LIVE)

    def _client(self, queue: str) -> QueueClient:
        with self._lock:
            client = self._clients.get(queue)
            if client is None:
                client = self._service.get_queue_client(queue, message_encode_policy=TextBase64EncodePolicy())
                self._clients[queue] = client
            return client


def ensure_queues(queues: CommandQueue, names: Iterable[str], with_poison: bool = True) -> None:
    """Create every queue (and, by default, its ``<name>-poison`` queue) up front for the local host.

    The Functions host creates poison queues only when it first moves a message there;
    creating them up front lets the local console and alerts watch them from the start.
    Fakes need nothing.
    """
    if not isinstance(queues, AzureCommandQueue):
        return
    for name in names:
        queues.ensure_queue(name)
        if with_poison:
            queues.ensure_queue(Queues.poison(name))
