"""Keep the simulated tenants across restarts: what a Microsoft 365 tenant keeps, in one JSON file.

``make run`` keeps Azurite's data in ``.azurite/`` between runs, so sessions and subscription
rows survive a restart; a simulator that started empty would then answer 404 for the events and
subscriptions the service remembers, and Outlook-side changes would never reach it again. With a
state file the simulator keeps what a real tenant would: directory, calendars, events and their
change sequence (so delta links stay valid), subscriptions, consent grants and refresh tokens,
and the token-signing key (so tokens issued before the restart still validate). Faults and the
request log are run-time switches and are not kept.

Writes are debounced (``DEBOUNCE`` seconds after the last change) and atomic (a temporary file in
the same folder, fsync, then ``os.replace``); ``flush()`` runs on every stop, SIGTERM included, so
no acknowledged change is lost. Without a state file (tests) everything stays in memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from local.simulator.state import (
    AuthCode,
    Calendar,
    Event,
    Mailbox,
    RefreshToken,
    RoomList,
    SimState,
    Subscription,
    Tenant,
)

log = logging.getLogger("local.simulator.persist")

FORMAT = 1
DEBOUNCE = 0.3
_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (AuthCode, Calendar, Event, Mailbox, RefreshToken, RoomList, Subscription, Tenant)
}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dc__": type(value).__name__, **fields}
    if isinstance(value, datetime):
        return {"__dt__": value.isoformat()}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, set):
        return {"__set__": sorted(_encode(v) for v in value)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__dt__" in value:
        return datetime.fromisoformat(value["__dt__"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__set__" in value:
        return {_decode(v) for v in value["__set__"]}
    if "__dc__" in value:
        cls = _CLASSES[value["__dc__"]]
        return cls(**{k: _decode(v) for k, v in value.items() if k != "__dc__"})
    return {k: _decode(v) for k, v in value.items()}


def snapshot(state: SimState, signing_key_pem: str, kid: str) -> dict[str, Any]:
    """Everything a tenant keeps, as JSON-ready data (call with the state lock held)."""
    return {
        "format": FORMAT,
        "seq": state.seq,
        "notificationCount": state.notification_count,
        "tenants": _encode(state.tenants),
        "subscriptions": _encode(state.subscriptions),
        "codes": _encode(state.codes),
        "refreshTokens": _encode(state.refresh_tokens),
        "appTokenIds": dict(state.app_token_ids),
        "revokedJtis": sorted(state.revoked_jtis),
        "signingKey": {"pem": signing_key_pem, "kid": kid},
    }


def restore(state: SimState, data: dict[str, Any]) -> None:
    """Replace the world in ``state`` with a snapshot (call with the state lock held)."""
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported simulator state format {data.get('format')!r}")
    state.seq = int(data["seq"])
    state.notification_count = int(data.get("notificationCount", 0))
    state.tenants = _decode(data["tenants"])
    state.subscriptions = _decode(data["subscriptions"])
    state.codes = _decode(data["codes"])
    state.refresh_tokens = _decode(data["refreshTokens"])
    state.app_token_ids = dict(data["appTokenIds"])
    state.revoked_jtis = set(data["revokedJtis"])


def read(path: Path) -> dict[str, Any] | None:
    """The saved snapshot, or None when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` so a reader (or a crash) only ever sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # the signing key is in it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Persister:
    """Saves the state file a moment after changes, and at once on ``flush()``."""

    def __init__(self, state: SimState, path: Path, signing_key_pem: str, kid: str) -> None:
        self.state = state
        self.path = path
        self._key = (signing_key_pem, kid)
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self.saves = 0
        self._thread = threading.Thread(target=self._run, name="sim-persist", daemon=True)
        self._thread.start()

    def mark(self) -> None:
        """Something changed: save soon (non-blocking; safe under the state lock)."""
        self._dirty.set()

    def flush(self) -> None:
        """Save now if anything changed since the last save."""
        if self._dirty.is_set():
            self._save()

    def stop(self) -> None:
        """Save what is pending and end the background thread."""
        self._stop.set()
        self._dirty.set()
        self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._stop.wait(DEBOUNCE)  # let a burst of changes land in one write
            try:
                self._save()
            except Exception:  # the saver must survive a full disk and the like; the next change retries
                log.exception("saving the simulator state failed")

    def _save(self) -> None:
        with self._write_lock:
            self._dirty.clear()
            with self.state.lock:
                data = snapshot(self.state, *self._key)
            write_atomically(self.path, data)
            self.saves += 1
