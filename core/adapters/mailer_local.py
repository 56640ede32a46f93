"""Owner-alert email for local runs: one JSON file per message in ``LOCAL_OUTBOX_DIR``.

Nothing leaves the machine. Each message is written atomically (a temporary file
renamed into place) as ``<UTC timestamp>-<id>.json`` with mode 0600 in a 0700
folder, so the local stack's console and the end-to-end tests can read exactly what
the owner would have received: ``{"to", "subject", "text", "sentAt"}``.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.domain.errors import DependencyError

FILE_MODE = stat.S_IRUSR | stat.S_IWUSR
DIR_MODE = stat.S_IRWXU


class LocalOutboxMailer:
    """``Mailer`` that writes to a folder instead of sending."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def send(self, to: str, subject: str, text: str) -> None:
        now = datetime.now(UTC)
        name = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:12]}.json"
        doc = {"to": to, "subject": subject, "text": text, "sentAt": now.isoformat()}
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            tmp = self.directory / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, ensure_ascii=False, indent=2)
            os.replace(tmp, self.directory / name)
        except OSError as exc:
            raise DependencyError("The local outbox cannot be written.", code="mailer_unavailable") from exc

    def messages(self) -> list[dict[str, Any]]:
        """Every message in the outbox, oldest first (local console and tests)."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json")):
            out.append(json.loads(path.read_text(encoding="utf-8")))
        return out
