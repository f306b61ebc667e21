"""What storage raises when the database cannot be used: every message names the database and
what to do."""

from __future__ import annotations

__all__ = ["StorageError", "StorageUnavailableError"]


class StorageError(Exception):
    """The database cannot be used; the message names the file and what to do."""


class StorageUnavailableError(StorageError):
    """Storage cannot take (or confirm) this prediction: the database is corrupt, was deleted
    while the bot ran, the writer is closed, or the in-memory backlog is full. Callers should
    not tell users a prediction was saved; the message says why and what to do."""
