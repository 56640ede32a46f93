"""Suite-wide guard: no secret, token or event content in any log record of the whole test run.

A pytest plugin (``pytest_plugins = ["tests.log_guard"]`` in tests/conftest.py). It
attaches a handler to the root logger at DEBUG for the whole session, *before* any
redaction (so it proves the code never logs these things, not merely that the filter
masks them), checks every formatted record (message, arguments, extras, exception
text) as it is emitted and, when the session ends, fails the run if a sentinel appeared:

* fixed ones: the test subjects ("Confidential subject ..."), the local client secret
  "local-dev-secret", anything shaped like a JWT, "Bearer ey";
* per-test ones registered (before the code under test runs) with ``log_guard.sentinel("...")`` or the
  ``log_sentinel`` fixture (client states, refresh tokens, codes a test made up).

A test that logs a secret on purpose (to test the redacting filter itself) is marked
``@pytest.mark.log_guard_exempt``; its records are not checked.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator

import pytest

FIXED_SENTINELS: tuple[str, ...] = (
    "Confidential subject",
    "local-dev-secret",
    "Bearer ey",
)
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "correlation_id"}

_sentinels: set[str] = set()
_lock = threading.Lock()


def sentinel(value: str) -> str:
    """Register a value that must never appear in any log record; returns it for convenience."""
    if len(value) >= 6:
        with _lock:
            _sentinels.add(value)
    return value


def find_leaks(text: str) -> list[str]:
    """Which sentinels (or a JWT) ``text`` contains."""
    with _lock:
        values = [*FIXED_SENTINELS, *_sentinels]
    hits = [v for v in values if v in text]
    if JWT_PATTERN.search(text):
        hits.append("<a JWT>")
    return hits


class _CaptureHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.current_test: str = "<collection>"
        self.exempt = False
        self.records = 0
        self.leaks: list[tuple[str, list[str], int]] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self.exempt:
            return
        try:
            text = self.format(record)
        except Exception:
            text = f"{record.msg!r} {record.args!r}"
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
        if extras:
            text += " " + repr(extras)
        self.records += 1
        hits = find_leaks(text)
        if hits:
            self.leaks.append((self.current_test, hits, len(text)))


_handler = _CaptureHandler()


@pytest.fixture
def log_sentinel() -> Callable[[str], str]:
    """Register values this test must never see logged."""
    return sentinel


def leaks() -> list[tuple[str, list[str], int]]:
    """(test id, sentinels found, record length) for every leaking record so far (checked as it was logged)."""
    return list(_handler.leaks)


def records_seen() -> int:
    """How many records the guard has checked (proves it is attached)."""
    return _handler.records


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "log_guard_exempt: this test logs secrets on purpose; the log guard skips it")
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)
    root.setLevel(logging.DEBUG)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _handler.current_test = item.nodeid
    _handler.exempt = item.get_closest_marker("log_guard_exempt") is not None
    try:
        return (yield)
    finally:
        _handler.current_test = "<between tests>"
        _handler.exempt = False


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = leaks()
    logging.getLogger().removeHandler(_handler)
    if not found:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["LOG GUARD: secrets or event content reached the logs:"]
    for test, hits, size in found[:20]:
        # Show where and what kind, never the record itself (it holds the secret).
        shown = ", ".join(h if h == "<a JWT>" else repr(h[:4] + "...") for h in hits)
        lines.append(f"  {test}: {shown} in a record of {size} chars")
    if reporter is not None:
        reporter.write_line("\n".join(lines), red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
