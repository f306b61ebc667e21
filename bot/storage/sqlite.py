"""The SQLite backend (aiosqlite): opening a file safely, its two connections, transactions,
and what SQLite's errors mean. The one implementation of :class:`bot.storage.backend.Backend`.

* **File safety.** A missing file is created with ``os.open(..., 0o600)`` (parent folders with
  0o700) before SQLite touches it; SQLite gives the ``-wal``/``-shm`` files the same mode. An
  existing file is checked before connecting: a file that is not SQLite, a SQLite file of another
  program or one written by a newer version (:mod:`bot.storage.schema`) raises
  :class:`StorageError` naming the file and the fix, and nothing is written. No file is ever
  deleted, truncated or overwritten. At open, ``PRAGMA quick_check`` (bounded by
  ``quick_check_s``) refuses a damaged file.
* **Durability.** WAL journal, ``busy_timeout``, ``foreign_keys=ON``, ``synchronous=FULL``:
  a committed row survives a process kill and a power loss (group commit makes each commit
  carry many rows, so syncing the WAL on every commit is cheap).
* **Errors.** A constraint (or a value SQLite cannot bind) refuses one row
  (:attr:`SqliteBackend.row_errors`); any other SQLite or OS error is the database's
  (``database is locked``, ``disk full``, ``readonly``, ...) and is retried by the writer,
  except a corrupt file (SQLITE_CORRUPT, SQLITE_NOTADB: "database disk image is malformed",
  "file is not a database") and a file deleted or replaced while the bot runs (its
  ``(st_dev, st_ino)`` is compared with the one opened before every batch's COMMIT), which no
  retry can cure.
* **Concurrency.** Two connections, each serialised by its own aiosqlite thread: one writes
  (transactions serialised by an asyncio lock), the other (``query_only``) runs the queries. In
  WAL mode a reader never waits for a writer, so while another program holds the write lock
  the writer waits (``busy_timeout``, then retries) but queries, and with them the message hot
  path, carry on. Errors from SQLite in queries propagate as ``sqlite3.Error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Final

import aiosqlite

from bot.storage.errors import StorageError, StorageUnavailableError
from bot.storage.schema import IDENTITY_SQL, check_identity, migrate

__all__ = [
    "FIX",
    "QUICK_CHECK_S",
    "SqliteBackend",
    "check_existing_file",
    "file_size",
    "is_sqlite_file",
]

log = logging.getLogger("bot.storage")  # one logger for the whole package

# PRAGMA quick_check at start-up stops after this many seconds on a very large file.
QUICK_CHECK_S: Final = 10.0
# SQLite result codes (primary) that mean the file itself is damaged: no retry can help.
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26
_SQLITE_HEADER: Final = b"SQLite format 3\x00"
_SYNCHRONOUS_SQL: Final = "PRAGMA synchronous = FULL"

FIX: Final = "move it aside or restore a backup, or point SENTIMENT_DB at another file"
_CORRUPT_FIX: Final = (
    "Stop the bot and restore a backup (README, Backup and restore); if only an index is "
    "damaged, `sqlite3 {path} REINDEX` repairs it; or move the file (and its -wal and -shm) "
    "aside and start afresh"
)

# Errors that mean "the database refuses this row", not "the database is unavailable".
_ROW_ERRORS: Final[tuple[type[Exception], ...]] = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    ValueError,
    TypeError,
    OverflowError,
)


# --------------------------------------------------------------------------------------------
# Files


def check_existing_file(path: Path) -> bool:
    """True if ``path`` exists (and looks like SQLite or is empty); raises StorageError if it
    cannot be a database. Reads only."""
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise StorageError(f"{path} is a folder, not a database file; {FIX}") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    if header and header != _SQLITE_HEADER:
        raise StorageError(
            f"{path} is not a SQLite database (nothing was changed); {FIX}. "
            "Sentiment Bot never deletes or overwrites a file it does not recognise."
        )
    return True


def is_sqlite_file(path: Path) -> bool:
    """Whether ``path`` is a file that starts as a SQLite database does (False when it is
    missing, unreadable or anything else). Reads 16 bytes only."""
    try:
        with path.open("rb") as file:
            return file.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


def _create_file(path: Path) -> None:
    """Create the parent folders (0o700) and an empty database file readable by its owner only."""
    try:
        # Each missing folder 0o700: mkdir(parents=True) gives the intermediate ones the
        # umask's default (0o755, or 0o777 under umask 0).
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # created meanwhile by someone else: opened like any existing file
    except OSError as exc:
        raise StorageError(
            f"cannot create the database {path}: {exc.strerror}; check that the folder is "
            "writable or point SENTIMENT_DB at another file"
        ) from exc
    os.close(fd)


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of ``path``: tells the file the bot opened from one put in its place."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def file_size(path: Path) -> int:
    """Bytes taken by the database file plus its write-ahead log."""
    size = 0
    for file in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            size += file.stat().st_size
    return size


def _quick_check(path: Path, limit_s: float) -> tuple[list[str] | None, float]:
    """``PRAGMA quick_check`` on its own read-only connection, stopped after ``limit_s``.

    Returns (the problems found, or None if stopped; seconds taken). ``["ok"]`` is a clean file.
    """
    started = time.monotonic()
    deadline = started + limit_s
    conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=5.0)
    try:
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            rows = conn.execute("PRAGMA quick_check(20)").fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupt" in str(exc):
                return None, time.monotonic() - started
            raise
        return [str(r[0]) for r in rows], time.monotonic() - started
    finally:
        conn.close()


async def _check_integrity(path: Path, limit_s: float) -> None:
    """Refuse a damaged file at start-up (StorageError naming the file and the fix)."""
    if limit_s <= 0:
        return
    try:
        problems, took = await asyncio.to_thread(_quick_check, path, limit_s)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot use {path} ({exc}); {FIX}") from exc
    if problems is None:
        log.warning(
            "%s: the integrity check (PRAGMA quick_check) was stopped after %.0f s on this large "
            "file; run it by hand while the bot is stopped: sqlite3 %s 'PRAGMA quick_check'",
            path,
            took,
            path,
        )
    elif problems != ["ok"]:
        lines = [
            line.strip()
            for problem in problems
            for line in problem.splitlines()
            if line.strip() and not line.startswith("***")
        ]
        raise StorageError(
            f"{path} is damaged (the integrity check, quick_check, found: "
            f"{'; '.join(lines[:3])}); nothing was changed. {_CORRUPT_FIX.format(path=path)}"
        )
    else:
        log.debug("%s: quick_check ok in %.2f s", path, took)


async def _connect_reader(path: Path, busy_timeout: float) -> aiosqlite.Connection:
    """A second connection for queries only (``query_only``: it can never write)."""
    reader = await aiosqlite.connect(path, isolation_level=None)
    try:
        await reader.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
        await reader.execute("PRAGMA query_only = ON")
    except BaseException:
        await reader.close()
        raise
    return reader


# --------------------------------------------------------------------------------------------
# The backend


class _Transaction:
    """A write transaction on the writing connection (see :class:`Transaction`)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cursor = await self._db.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        cursor = await self._db.executemany(sql, rows)
        return cursor.rowcount

    async def execute_insert(self, sql: str, params: Sequence[object]) -> int | None:
        cursor = await self._db.execute(sql, params)
        return cursor.lastrowid if cursor.rowcount == 1 else None

    async def execute_fetchall(
        self, sql: str, params: Sequence[object] = ()
    ) -> list[Sequence[Any]]:
        return list(await self._db.execute_fetchall(sql, params))


class SqliteBackend:
    """One SQLite file, opened by :meth:`open`: a writing connection (:attr:`db`) and a
    read-only one for queries (:attr:`reader`)."""

    row_errors: tuple[type[Exception], ...] = _ROW_ERRORS
    errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)

    def __init__(self, db: aiosqlite.Connection, path: Path, reader: aiosqlite.Connection) -> None:
        """Private: use :meth:`SqliteBackend.open`."""
        self.path = path
        self.db = db
        # Queries run on their own connection: in WAL mode a read never waits for a write
        # lock, so a writer stuck on a locked file (busy_timeout) cannot stall the hot path.
        self.reader = reader
        self._tx_lock = asyncio.Lock()  # one write transaction at a time
        self._closed = False
        self._identity = _file_identity(path)  # (st_dev, st_ino) of the file opened

    @classmethod
    async def open(
        cls, path: str | Path, *, busy_timeout: float = 5.0, quick_check_s: float = QUICK_CHECK_S
    ) -> SqliteBackend:
        """Open (creating or migrating) the database at ``path``.

        Raises StorageError for a file that is not a Sentiment Bot database, one written by a
        newer version, one that cannot be created or read, or one that ``PRAGMA quick_check``
        finds damaged (stopped after ``quick_check_s`` seconds on a huge file: a WARNING);
        such a file is left unchanged.
        """
        path = Path(path).expanduser().resolve()
        if not check_existing_file(path):
            _create_file(path)
        else:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning(
                    "%s can be read by other users (mode %o); chmod 600 it to keep "
                    "predictions private",
                    path,
                    mode,
                )
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {path} ({exc}); {FIX}") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
            await db.execute("PRAGMA foreign_keys = ON")
            rows = list(await db.execute_fetchall(IDENTITY_SQL))
            version, app_id, has_tables = rows[0]
            check_identity(path, version, app_id, bool(has_tables))
            # Only now write anything: the file is ours (or empty) and not from the future.
            mode_rows = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
            if str(mode_rows[0][0]).lower() != "wal":
                log.warning("%s: WAL journal mode unavailable, using %s", path, mode_rows[0][0])
            # FULL keeps a committed row through a power loss, not only a crash of the process
            # (NORMAL would; see README, Operations).
            await db.execute(_SYNCHRONOUS_SQL)
            if has_tables:
                await _check_integrity(path, quick_check_s)
            await migrate(db, path)
            reader = await _connect_reader(path, busy_timeout)
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise StorageError(f"cannot use {path} ({exc}); {FIX}") from exc
            raise
        return cls(db, path, reader)

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure_open(self) -> None:
        if self._closed:
            raise StorageError(f"storage for {self.path} is closed")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error."""
        self._ensure_open()
        async with self._tx_lock:
            try:
                # Inside the try: a caller cancelled while BEGIN waits for a lock (a command's
                # bounded wait) must not leave the connection in a transaction; the ROLLBACK
                # runs after the BEGIN in aiosqlite's thread.
                await self.db.execute("BEGIN IMMEDIATE")
                yield _Transaction(self.db)
                await self.db.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.db.rollback()
                raise

    async def execute_fetchall(
        self, sql: str, params: Sequence[object] = ()
    ) -> list[Sequence[Any]]:
        self._ensure_open()
        return list(await self.reader.execute_fetchall(sql, params))

    def ensure_same_database(self) -> None:
        """Raise StorageUnavailableError if the file opened is gone or another file took its place
        (SQLite would go on writing to the deleted inode, which nobody can open again)."""
        if self._identity is not None and _file_identity(self.path) != self._identity:
            raise StorageUnavailableError(
                f"the database file {self.path} was deleted or replaced while the bot ran"
            )

    def is_corruption(self, exc: BaseException) -> bool:
        """Whether SQLite says the file itself is damaged: retrying cannot help."""
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return True
        text = str(exc).lower()
        return "malformed" in text or "not a database" in text

    def breakdown(self, exc: BaseException) -> tuple[str, str]:
        if isinstance(exc, StorageUnavailableError):  # from ensure_same_database
            return (
                f"the database file {self.path} was deleted or replaced while the bot ran "
                "(its device and inode changed)",
                "Restart the bot to create a new file, or stop it and restore a backup "
                "(README, Backup and restore)",
            )
        return f"the database {self.path} is damaged ({exc})", _CORRUPT_FIX.format(path=self.path)

    def open_error(self, exc: BaseException) -> Exception | None:
        if isinstance(exc, sqlite3.DatabaseError):
            return StorageError(f"cannot use {self.path} ({exc}); {FIX}")
        return None

    async def size_bytes(self) -> int:
        return file_size(self.path)

    async def close(self) -> None:
        self._closed = True
        try:
            await self.db.close()
        finally:
            await self.reader.close()
