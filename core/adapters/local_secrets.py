"""SecretStore on local files, for the local stack (no Azure account, no Key Vault).

One file per secret under a folder (default ``.local/secrets``, git-ignored), the
folder ``0700`` and each file ``0600`` so other local users cannot read tokens.
Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a
crash never leaves half a refresh token behind.

File names are reversible: ``[a-z0-9_-]`` stay, every other character becomes
``%XX`` of its UTF-8 bytes. Upper-case letters are escaped too, so names differing
only by case stay distinct on case-insensitive file systems (macOS, Windows), and a
leading ``.`` can never appear. Names whose encoding would exceed
``MAX_FILE_NAME`` use ``~h-<sha256>`` instead (not reversible, still injective).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from pathlib import Path

from core.adapters.rules import check_secret_value
from core.domain.errors import SecretStoreUnavailable

MAX_FILE_NAME = 200  # well under the 255-byte limit of common file systems, with room for temp suffixes
_KEEP = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_HASHED_PREFIX = "~h-"


def encode_file_name(name: str) -> str:
    """A safe, reversible file name for a secret name (hashed when too long)."""
    encoded = "".join(ch if ch in _KEEP else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in name)
    if not encoded or len(encoded) > MAX_FILE_NAME:
        return _HASHED_PREFIX + hashlib.sha256(name.encode("utf-8")).hexdigest()
    return encoded


def decode_file_name(file_name: str) -> str:
    """Invert ``encode_file_name`` (hashed names cannot be inverted)."""
    if file_name.startswith(_HASHED_PREFIX):
        raise ValueError("a hashed secret file name cannot be decoded")
    data = bytearray()
    i = 0
    while i < len(file_name):
        if file_name[i] == "%":
            data.append(int(file_name[i + 1 : i + 3], 16))
            i += 3
        else:
            data.extend(file_name[i].encode("utf-8"))
            i += 1
    return data.decode("utf-8")


class LocalFileSecretStore:
    """Secrets as owner-only files; for developer machines and the local end-to-end stack."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)

    @property
    def directory(self) -> Path:
        return self._dir

    def get(self, name: str) -> str | None:
        try:
            return self._path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretStoreUnavailable("The local secret folder cannot be read.") from exc

    def set(self, name: str, value: str) -> None:
        check_secret_value(value)
        target = self._path(name)
        try:
            self._ensure_dir()
            tmp = self._dir / f".{target.name}.{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(value)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
        except OSError as exc:
            raise SecretStoreUnavailable("The local secret folder cannot be written.") from exc

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise SecretStoreUnavailable("The local secret folder cannot be written.") from exc

    def ping(self) -> None:
        try:
            self._ensure_dir()
            if not os.access(self._dir, os.R_OK | os.W_OK | os.X_OK):
                raise PermissionError(str(self._dir))
        except OSError as exc:
            raise SecretStoreUnavailable("The local secret folder is not usable.") from exc

    def _path(self, name: str) -> Path:
        return self._dir / encode_file_name(name)

    def _ensure_dir(self) -> None:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(self._dir.stat().st_mode)
        if mode != 0o700:
            os.chmod(self._dir, 0o700)  # mkdir's mode is masked by umask, and an old folder may be wider
