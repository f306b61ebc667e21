"""The seam between storage and a database engine: what the writer, the queries, the guild
settings and privacy need from one, and nothing else.

:class:`bot.storage.sqlite.SqliteBackend` (a file) and
:class:`bot.storage.postgres.PostgresBackend` (a server, through asyncpg) implement it, under the
same :class:`bot.storage.Storage`.

SQL crosses the seam as text written once, by the modules that own it (``queries``,
``writer``, ``settings``, ``privacy``), in one dialect: values only ever travel as qmark
parameters (``?``), never spliced into the text, and the statements use the SQL that SQLite and
PostgreSQL share (``ON CONFLICT DO NOTHING``, ``EXISTS``, ``CASE``). A backend whose driver
takes another placeholder style (asyncpg: ``$1``) rewrites the placeholders itself, in its
:class:`Transaction` and :meth:`Backend.execute_fetchall`; so do the two SQLite spellings the
queries use, ``guild_id IS ?`` (null-safe equality: PostgreSQL's ``IS NOT DISTINCT FROM``,
which the PostgreSQL backend writes as ``= $n`` or ``IS NULL`` by the value, so that an index
serves it) and ``CAST(x AS INTEGER)`` truncating a positive number. The schema and its
migrations, how a database is opened and recognised, and which of its errors mean what, belong
to the backend.
:class:`bot.storage.postgres.PostgresBackend` is the second implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from bot.storage.dsn import Dsn

__all__ = ["Backend", "Transaction"]


class Transaction(Protocol):
    """One write transaction, from :meth:`Backend.transaction`; statements take ``?``
    parameters."""

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        """Run one statement once per row of parameters; the rows changed in all."""
        ...

    async def execute_insert(self, sql: str, params: Sequence[object]) -> int | None:
        """Run one INSERT; the new row's id, or None when it inserted nothing
        (``ON CONFLICT DO NOTHING``)."""
        ...

    async def execute_fetchall(
        self, sql: str, params: Sequence[object] = ()
    ) -> list[Sequence[Any]]:
        """Run one query inside the transaction; its rows."""
        ...


class Backend(Protocol):
    """A database opened, migrated and checked; from the backend's own ``open``."""

    @property
    def path(self) -> Path | Dsn:
        """The database, as every message and the operator's statistics name it (a Dsn shows
        its password masked)."""
        ...

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        ...

    @property
    def row_errors(self) -> tuple[type[Exception], ...]:
        """Errors meaning the database refuses one row for its content (a constraint, a value
        it cannot store): the writer skips that row, never retries it."""
        ...

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """Errors of the database itself (locked, disk full, read-only, damaged): the writer
        retries them with backoff, unless :meth:`is_corruption` says retrying cannot help."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One write transaction at a time: committed on exit, rolled back on any error (also
        when cancelled while waiting for the database's lock). StorageError once closed."""
        ...

    async def execute_fetchall(
        self, sql: str, params: Sequence[object] = ()
    ) -> list[Sequence[Any]]:
        """Run one query outside any write transaction, never waiting for a writer's lock.
        StorageError once closed; the database's errors propagate."""
        ...

    def ensure_same_database(self) -> None:
        """Raise StorageUnavailableError if the database opened is gone or was replaced (called
        inside a write transaction, before COMMIT)."""
        ...

    def is_corruption(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the database itself is damaged: retrying cannot help."""
        ...

    def breakdown(self, exc: BaseException) -> tuple[str, str]:
        """What happened and what to do, for the one ERROR logged when storage stops for good:
        ``exc`` is a corruption (:meth:`is_corruption`) or the StorageUnavailableError of
        :meth:`ensure_same_database`."""
        ...

    def open_error(self, exc: BaseException) -> Exception | None:
        """The StorageError (naming the database and the fix) to raise for ``exc`` met while
        storage was opening, or None to let ``exc`` propagate as it is."""
        ...

    async def size_bytes(self) -> int:
        """How much disk the database takes."""
        ...

    async def close(self) -> None:
        """Close every connection; later transactions and queries raise StorageError."""
        ...
