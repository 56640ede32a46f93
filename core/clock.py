"""The system clock adapter (pure stdlib, so it lives beside the ports)."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
