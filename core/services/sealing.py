"""Sealing free text that has to ride through a queue (meeting subject, cancel comment).

A booking's subject and a cancellation comment go to Outlook and nowhere else: they are
never stored in a table. But the Outlook write happens in a queue worker, so the text
must travel in the queue message, and queue storage keeps messages readable (a poison
queue keeps them for good). The API therefore seals the text (authenticated encryption
bound to the session it belongs to) and only the worker opens it. A message that cannot
be opened (key rotated, tampered, bound to another session) is not an error for the
booking: the worker falls back to the subject template.

The port is a Protocol so the service layer never sees the cipher; the AES-GCM adapter
with its key from the secret store lives in ``core/adapters/sealer.py``.
"""

from __future__ import annotations

from typing import Final, Protocol

SEALING_KEY_NAME: Final = "queue-sealing-key"


class UnsealFailed(ValueError):
    """A sealed value could not be opened: wrong key, tampered, or sealed for another context."""


class Sealer(Protocol):
    """Seals short texts for one context (e.g. ``tenant:session``) and opens them again."""

    def seal(self, plaintext: str, context: str) -> str:
        """An opaque ASCII token that reveals nothing of ``plaintext`` and opens only with ``context``."""
        ...

    def unseal(self, token: str, context: str) -> str:
        """The text sealed with ``seal(text, context)``; ``UnsealFailed`` for anything else."""
        ...
