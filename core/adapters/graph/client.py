"""Low-level Microsoft Graph client: auth, retry policy, paging, ``$batch``, error translation.

Every request carries ``Prefer: IdType="ImmutableId"`` (stored event ids survive folder
moves), a fresh ``client-request-id``, the tenant's bearer token and the session's
timeouts. Throttling (429) and 503/504 are retried honouring ``Retry-After``, else with
exponential back-off and jitter, within a bounded total wait; when the budget is spent
the caller gets ``Throttled(retry_after)`` (or ``TransientGraphError(retry_after)``) so a
queue worker can reschedule the message instead of burning its dequeue attempts.

A 401 invalidates the tenant's cached token once and retries (a token minted before
consent changed); a second 401 is ``GraphAuthError``. Connection errors and timeouts
are retried for idempotent methods only (a POST may have landed).

Logs carry method, route shape (ids replaced by ``{id}``), status, Graph code and
request ids: never URLs with addresses, bodies, tokens or Graph's message text.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from core.adapters.graph.errors import RETRYABLE_STATUSES, error_from_graph, graph_error_code, parse_retry_after
from core.adapters.http import DEFAULT_TIMEOUT
from core.domain.calendar import BatchOutcome, BatchRequest, GraphIdentity
from core.domain.errors import GraphRequestRejected, TransientGraphError
from core.ports import TokenProvider

log = logging.getLogger("core.adapters.graph")

IMMUTABLE_ID_PREFERENCE = 'IdType="ImmutableId"'
BATCH_LIMIT = 20
# A $batch can itself answer 424 (Failed Dependency) when its parts chain with dependsOn
# (concepts/json-batching.md: "any request that depends on that request fails with status code 424").
_BATCH_FAILED_DEPENDENCY = frozenset({424})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
_ID_SEGMENT = re.compile(r"^(users|events|calendars|subscriptions|places|calendarView|messages)$", re.I)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry throttled or unavailable answers before handing back ``Throttled``.

    ``sleep`` and ``random`` are injectable so tests run instantly and deterministically.
    """

    max_attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_total_wait: float = 45.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    random: Callable[[], float] = field(default=random.random)

    def backoff(self, attempt: int) -> float:
        """Exponential back-off with "equal jitter": half fixed, half random (attempt counts from 1)."""
        ceiling = min(self.max_delay, self.base_delay * (2.0 ** max(0, attempt - 1)))
        return ceiling / 2 + self.random() * ceiling / 2

    def may_wait(self, attempt: int, waited: float, delay: float) -> bool:
        """True when another attempt fits both the attempt count and the total-wait budget."""
        return attempt < self.max_attempts and waited + delay <= self.max_total_wait


@dataclass(frozen=True, slots=True)
class GraphResponse:
    """A successful Graph answer: status, decoded JSON (None for 202/204) and headers."""

    status: int
    json: Any
    headers: Mapping[str, str]


def route_of(path: str) -> str:
    """The route shape of a path for logs: ``/users/{id}/events/{id}`` (no ids, no query)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    out: list[str] = []
    previous = ""
    for part in parts:
        out.append("{id}" if _ID_SEGMENT.match(previous) and not part.startswith("microsoft.graph") else part)
        previous = part
    return "/" + "/".join(out)


class GraphClient:
    """Authenticated, retrying access to one Graph cloud (``GRAPH_BASE_URL``)."""

    def __init__(
        self,
        graph_base_url: str,
        session: requests.Session,
        tokens: TokenProvider,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._base = graph_base_url.rstrip("/")
        base = urlsplit(self._base)
        self._origin = (base.scheme, base.netloc.lower())
        self._base_path = base.path.rstrip("/")
        self._session = session
        self._tokens = tokens
        self.retry = retry or RetryPolicy()

    # --- single requests -------------------------------------------------------------

    def request(
        self,
        who: GraphIdentity,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> GraphResponse:
        """One Graph call with the retry policy; raises the translated error on failure.

        Statuses in ``accept`` are returned like successes (``$batch`` reads an outer 424's parts)."""
        method = method.upper()
        url, path = self._resolve(path_or_url)
        route = route_of(path)
        client_request_id = str(uuid.uuid4())
        attempt = 0
        waited = 0.0
        reauthenticated = False
        while True:
            attempt += 1
            send_headers = self._headers(who, client_request_id, headers)
            try:
                response = self._session.request(
                    method, url, params=params, json=json, headers=send_headers, timeout=DEFAULT_TIMEOUT
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                delay = self.retry.backoff(attempt)
                if method in _IDEMPOTENT and self.retry.may_wait(attempt, waited, delay):
                    log.info("graph %s %s: %s, retry in %.1fs", method, route, type(exc).__name__, delay)
                    self.retry.sleep(delay)
                    waited += delay
                    continue
                raise TransientGraphError(retry_after=delay, details={"cause": type(exc).__name__}) from exc
            except requests.RequestException as exc:
                raise TransientGraphError(details={"cause": type(exc).__name__}) from exc

            status = response.status_code
            if status < 400 or status in accept:
                return GraphResponse(status, _json_or_none(response), response.headers)

            payload = _json_or_none(response)
            if status == 401 and not reauthenticated:
                reauthenticated = True
                attempt -= 1
                self._tokens.invalidate(who.tenant_id)
                log.info("graph %s %s: 401, refreshing the token once", method, route)
                continue
            header_delay = parse_retry_after(response.headers.get("Retry-After"))
            if status in RETRYABLE_STATUSES:
                delay = header_delay if header_delay is not None else self.retry.backoff(attempt)
                if self.retry.may_wait(attempt, waited, delay):
                    log.info("graph %s %s: %s, retry %d in %.1fs", method, route, status, attempt, delay)
                    self.retry.sleep(delay)
                    waited += delay
                    continue
                error = error_from_graph(
                    status,
                    payload,
                    path,
                    retry_after=delay,
                    retry_after_given=header_delay is not None,
                    headers=response.headers,
                )
            else:
                error = error_from_graph(status, payload, path, headers=response.headers)
            log.warning(
                "graph %s %s: %s %s request-id=%s client-request-id=%s",
                method,
                route,
                status,
                graph_error_code(payload),
                error.details.get("request_id"),
                client_request_id,
            )
            raise error

    def get(self, who: GraphIdentity, path_or_url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> Any:
        """GET and return the decoded JSON."""
        return self.request(who, "GET", path_or_url, params=params, headers=headers).json

    # --- paging ----------------------------------------------------------------------

    def pages(
        self,
        who: GraphIdentity,
        path_or_url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Each page of a collection, following ``@odata.nextLink`` exactly as given."""
        url: str = path_or_url
        query: Mapping[str, Any] | None = params
        while True:
            page = self.request(who, "GET", url, params=query, headers=headers).json
            if not isinstance(page, dict):
                raise GraphRequestRejected("Microsoft 365 sent a page that is not a JSON object.")
            yield page
            next_link = page.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return
            url, query = next_link, None

    def items(
        self,
        who: GraphIdentity,
        path_or_url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every ``value`` entry of every page."""
        for page in self.pages(who, path_or_url, params, headers):
            for item in page.get("value") or ():
                if isinstance(item, dict):
                    yield item

    # --- $batch ----------------------------------------------------------------------

    def batch(self, who: GraphIdentity, requests_: Sequence[BatchRequest]) -> list[BatchOutcome]:
        """Send requests as ``$batch`` groups of 20 and return one outcome per request, in order.

        A part answered 429/503/504 is retried (only the failed parts, after the longest
        ``Retry-After`` among them, else back-off) within the retry budget; then it gets
        ``Throttled``/``TransientGraphError``. Other failures are translated like single calls.
        """
        ids = [r.id for r in requests_]
        if len(set(ids)) != len(ids):
            raise ValueError("batch request ids must be unique")
        outcomes: dict[str, BatchOutcome] = {}
        for start in range(0, len(requests_), BATCH_LIMIT):
            self._batch_group(who, list(requests_[start : start + BATCH_LIMIT]), outcomes)
        return [outcomes[i] for i in ids]

    def _batch_group(self, who: GraphIdentity, group: list[BatchRequest], outcomes: dict[str, BatchOutcome]) -> None:
        pending = group
        attempt = 0
        waited = 0.0
        while pending:
            attempt += 1
            answer = self.request(who, "POST", "/$batch", json={"requests": [_batch_part(r) for r in pending]},
                                  accept=_BATCH_FAILED_DEPENDENCY)
            parts: dict[str, dict[str, Any]] = {}
            body = answer.json if isinstance(answer.json, dict) else {}
            if answer.status in _BATCH_FAILED_DEPENDENCY and not body.get("responses"):
                # The whole batch answered 424 without parts: every part failed with it. Nothing
                # is retried (a dependency failed, which retrying the same batch does not fix).
                for req in pending:
                    outcomes[req.id] = BatchOutcome(
                        req.id, answer.status, None, error_from_graph(answer.status, body, _path_of(req.url))
                    )
                return
            for part in body.get("responses") or ():
                if isinstance(part, dict) and "id" in part:
                    parts[str(part["id"])] = part
            retry: list[tuple[BatchRequest, int, Any, float | None]] = []
            for req in pending:
                part = parts.get(req.id)
                if part is None:  # Graph dropped the part: treat like a 503 without Retry-After
                    retry.append((req, 503, None, None))
                    continue
                status = int(part.get("status", 500))
                part_body = part.get("body")
                if status < 400:
                    outcomes[req.id] = BatchOutcome(req.id, status, part_body if isinstance(part_body, dict) else None)
                elif status in RETRYABLE_STATUSES:
                    retry.append((req, status, part_body, parse_retry_after(_header(part, "Retry-After"))))
                else:
                    error = error_from_graph(status, part_body, _path_of(req.url))
                    outcomes[req.id] = BatchOutcome(req.id, status, None, error)
            if not retry:
                return
            given = [ra for *_, ra in retry if ra is not None]
            delay = max(given) if given else self.retry.backoff(attempt)
            if self.retry.may_wait(attempt, waited, delay):
                log.info("graph $batch: %d of %d parts throttled, retry in %.1fs", len(retry), len(pending), delay)
                self.retry.sleep(delay)
                waited += delay
                pending = [req for req, *_ in retry]
                continue
            for req, status, part_body, ra in retry:
                error = error_from_graph(
                    status, part_body, _path_of(req.url), retry_after=delay, retry_after_given=ra is not None
                )
                outcomes[req.id] = BatchOutcome(req.id, status, None, error)
            return

    # --- internals -------------------------------------------------------------------

    def _resolve(self, path_or_url: str) -> tuple[str, str]:
        """Absolute URL and the path relative to the version root (for error mapping).

        Absolute URLs (``@odata.nextLink``/``deltaLink``) must stay on the configured Graph
        origin: the bearer token is never sent anywhere else.
        """
        if path_or_url.startswith(("https://", "http://")):
            parts = urlsplit(path_or_url)
            if (parts.scheme, parts.netloc.lower()) != self._origin:
                raise GraphRequestRejected("Microsoft 365 returned a link to another host; it was not followed.")
            path = parts.path
            if path.startswith(self._base_path):
                path = path[len(self._base_path) :]
            return path_or_url, path or "/"
        path = path_or_url if path_or_url.startswith("/") else "/" + path_or_url
        return self._base + path, path

    def _headers(
        self, who: GraphIdentity, client_request_id: str, extra: Mapping[str, str] | None
    ) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._tokens.token(who)}",
            "Accept": "application/json",
            "client-request-id": client_request_id,
            "return-client-request-id": "true",
            "Prefer": IMMUTABLE_ID_PREFERENCE,
        }
        for key, value in (extra or {}).items():
            if key.lower() == "prefer":
                headers["Prefer"] = f"{IMMUTABLE_ID_PREFERENCE}, {value}"
            else:
                headers[key] = value
        return headers


def _batch_part(req: BatchRequest) -> dict[str, Any]:
    headers = {"Prefer": IMMUTABLE_ID_PREFERENCE}
    for key, value in req.headers.items():
        if key.lower() == "prefer":
            headers["Prefer"] = f"{IMMUTABLE_ID_PREFERENCE}, {value}"
        else:
            headers[key] = value
    part: dict[str, Any] = {"id": req.id, "method": req.method.upper(), "url": req.url, "headers": headers}
    if req.body is not None:
        part["body"] = dict(req.body)
        headers.setdefault("Content-Type", "application/json")
    return part


def _header(part: Mapping[str, Any], name: str) -> Any:
    headers = part.get("headers")
    if isinstance(headers, dict):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return value
    return None


def _path_of(url: str) -> str:
    path = url.split("?", 1)[0]
    return path if path.startswith("/") else "/" + path


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
