"""The PostgreSQL backend (asyncpg, a connection pool): the second implementation of
:class:`bot.storage.backend.Backend`, selected by ``SENTIMENT_DB=postgresql://...``.

* **SQL.** The statements written once for both engines are rewritten for PostgreSQL (cached
  per text): qmark ``?`` placeholders become ``$1, $2, ...`` (never inside a quoted literal);
  SQLite's null-safe ``x IS ?`` becomes ``x = $n``, or ``x IS NULL`` when the value is None
  (``IS NOT DISTINCT FROM`` would be the same test, but no index serves it); and
  ``CAST(e AS INTEGER)`` (SQLite truncates) becomes ``CAST(TRUNC(e) AS BIGINT)`` (PostgreSQL
  would round). A batch
  ``INSERT ... VALUES (?, ...)`` goes as one multi-row statement, so a batch is one round trip
  and its status tells the rows inserted. PostgreSQL's ``text`` cannot hold NUL: a NUL in a
  text is stored as U+FFFD (SQLite keeps it).
* **Transactions.** One write transaction at a time per process (an asyncio lock, as for
  SQLite); each statement in it runs under a savepoint, so that a row the database refuses
  undoes that statement only (SQLite's statement-level rollback), which the writer's
  row-by-row fallback relies on. Queries run on other pooled connections and, by MVCC, never
  wait for a writer. ``lock_timeout`` is ``busy_timeout``: a writer blocked behind another
  session's lock fails after it and is retried with backoff, like ``database is locked``.
* **Several processes.** Rows are inserted with ``ON CONFLICT DO NOTHING`` on the unique
  index of automatic predictions, so two processes writing the same message store one row;
  migrations take an advisory lock (:mod:`bot.storage.pg_schema`). Per-guild settings and
  opt-outs are re-read on a timer (:class:`bot.storage.Storage`, ``settings_refresh_s``).
* **Durability.** A transaction is durable once COMMIT returns (``synchronous_commit`` on,
  the server's default; the server's own settings decide, not the bot).
* **Errors.** A constraint or a value the server cannot store refuses one row
  (:attr:`PostgresBackend.row_errors`); any other server or connection error is retried by
  the writer (the pool replaces broken connections), except data corruption (SQLSTATE XX001,
  XX002). Opening, each failure is one line naming the address (password masked) and the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]

from bot.storage.dsn import Dsn
from bot.storage.errors import StorageError
from bot.storage.pg_schema import check_pg_identity, migrate_pg, pg_identity

__all__ = [
    "CONNECT_TIMEOUT_S",
    "ERRORS",
    "POOL_SIZE",
    "PostgresBackend",
    "connect_error",
    "fetch",
    "read_only",
    "translate",
]

CONNECT_TIMEOUT_S: Final = 10.0
POOL_SIZE: Final = 4
_MAX_PARAMS: Final = 32_767  # the protocol's limit of parameters per statement
_CORRUPTION: Final = frozenset({"XX001", "XX002"})  # data_corrupted, index_corrupted

_ROW_ERRORS: Final[tuple[type[Exception], ...]] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    ValueError,
    TypeError,
    OverflowError,
)
ERRORS: Final[tuple[type[Exception], ...]] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
_CONNECT_ERRORS: Final[tuple[type[Exception], ...]] = (
    *ERRORS,
    ValueError,
)  # ValueError: an address asyncpg cannot read

# --------------------------------------------------------------------------------------------
# SQL


_VALUES: Final = re.compile(
    r"^(?P<head>.*\bVALUES\s*)\((?P<row>\?(?:\s*,\s*\?)*)\)(?P<tail>.*)$", re.S
)


def _cast_to_trunc(sql: str) -> str:
    """``CAST(e AS INTEGER)`` -> ``CAST(TRUNC(e) AS BIGINT)``, balancing parentheses."""
    out: list[str] = []
    i = 0
    while (start := sql.find("CAST(", i)) >= 0:
        depth, j = 0, start + 4
        while j < len(sql):
            depth += {"(": 1, ")": -1}.get(sql[j], 0)
            if depth == 0:
                break
            j += 1
        inner = sql[start + 5 : j]
        if inner.endswith(" AS INTEGER"):
            out.append(sql[i:start] + f"CAST(TRUNC({inner[: -len(' AS INTEGER')]}) AS BIGINT)")
        else:
            out.append(sql[i : j + 1])
        i = j + 1
    return "".join(out) + sql[i:]


@functools.lru_cache(maxsize=512)
def _split(sql: str) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """The text around each ``?`` (outside quoted literals and identifiers), after the CAST
    rewrite, and for each ``?`` whether it is SQLite's null-safe ``x IS ?``."""
    sql = _cast_to_trunc(sql)
    pieces: list[str] = []
    start = 0
    quote: str | None = None
    for i, ch in enumerate(sql):
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            pieces.append(sql[start:i])
            start = i + 1
    pieces.append(sql[start:])
    null_safe = tuple(piece.endswith(" IS ") for piece in pieces[:-1])
    return tuple(pieces), null_safe


@functools.lru_cache(maxsize=1024)
def _render(sql: str, nulls: tuple[bool, ...]) -> str:
    """The PostgreSQL text of ``sql`` for parameters where ``nulls`` says which null-safe
    comparisons get NULL: ``x IS NULL`` for those, ``x = $n`` for the others (so an index on
    ``x`` serves it: ``IS NOT DISTINCT FROM`` is not indexable)."""
    pieces, null_safe = _split(sql)
    out = [pieces[0]]
    n = 0
    for piece, safe, null in zip(pieces[1:], null_safe, nulls, strict=True):
        if safe and null:
            out[-1] = out[-1] + "NULL"
        else:
            if safe:
                out[-1] = out[-1][: -len("IS ")] + "= "
            n += 1
            out[-1] = out[-1] + f"${n}"
        out.append(piece)
    return "".join(out)


def translate(sql: str, params: Sequence[object] = ()) -> tuple[str, list[object]]:
    """The PostgreSQL text and parameters of a statement written in the shared dialect (see
    the module): ``?`` numbered, ``x IS ?`` as ``x = $n`` or ``x IS NULL``, CAST truncating."""
    _, null_safe = _split(sql)
    if len(null_safe) != len(params):
        raise ValueError(f"{len(null_safe)} placeholders but {len(params)} parameters")
    nulls = tuple(safe and p is None for safe, p in zip(null_safe, params, strict=True))
    kept = [_param(p) for p, null in zip(params, nulls, strict=True) if not null]
    return _render(sql, nulls), kept


@functools.lru_cache(maxsize=512)
def _multi_row(sql: str, rows: int) -> str | None:
    """``INSERT ... VALUES (?, ?) ...`` with ``rows`` value lists, or None for another kind."""
    match = _VALUES.match(sql)
    if match is None:
        return None
    row = f"({match['row']})"
    text = match["head"] + ", ".join([row] * rows) + match["tail"]
    return _render(text, (False,) * len(_split(text)[1]))


def _param(value: object) -> object:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _changed(status: str) -> int:
    """The rows a command changed, from its status (``INSERT 0 5``, ``DELETE 3``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


# --------------------------------------------------------------------------------------------
# Errors, one line each, never with the password


def _flat(text: str, dsn: Dsn) -> str:
    password = _password(dsn)
    if password:
        text = text.replace(password, "***")
    return " ".join(text.split())


def _password(dsn: Dsn) -> str | None:
    with contextlib.suppress(ValueError):
        from urllib.parse import parse_qsl, unquote, urlsplit

        parts = urlsplit(dsn.reveal())
        return (
            (unquote(parts.password) if parts.password else None)
            or dict(parse_qsl(parts.query)).get("password")
            or None
        )
    return None


def connect_error(dsn: Dsn, exc: BaseException) -> StorageError:
    """The one-line StorageError for a failure to connect to (or set up) ``dsn``."""
    what = _flat(str(exc) or type(exc).__name__, dsn)
    if isinstance(exc, asyncpg.InvalidPasswordError):
        fix = "check the password in SENTIMENT_DB (or PGPASSWORD, ~/.pgpass)"
        return StorageError(f"PostgreSQL at {dsn} refused the password ({what}); {fix}")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return StorageError(
            f"PostgreSQL at {dsn} refused the connection ({what}); check the user name in "
            "SENTIMENT_DB and the server's pg_hba.conf"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StorageError(
            f"the database of {dsn} does not exist ({what}); create it (createdb "
            f"{dsn.database or 'NAME'}) or fix SENTIMENT_DB"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return StorageError(
            f"the user of {dsn} may not create the bot's tables ({what}); let it create tables "
            "in the schema (grant create on schema public) or connect as the database's owner"
        )
    if isinstance(exc, socket.gaierror):
        return StorageError(
            f"cannot find the PostgreSQL server of {dsn} ({what}); check the host in SENTIMENT_DB"
        )
    if isinstance(exc, TimeoutError):
        return StorageError(
            f"no answer from the PostgreSQL server of {dsn} within {CONNECT_TIMEOUT_S:.0f} s; "
            "check that it runs and that SENTIMENT_DB names its host and port"
        )
    if isinstance(exc, OSError | asyncpg.CannotConnectNowError | asyncpg.PostgresConnectionError):
        return StorageError(
            f"cannot reach the PostgreSQL server of {dsn} ({what}); check that it runs and "
            "that SENTIMENT_DB names its host and port"
        )
    if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        return StorageError(
            f"SENTIMENT_DB ({dsn}) is not a usable PostgreSQL address ({what}); write it as "
            "postgresql://user:password@host:5432/dbname"
        )
    return StorageError(f"cannot use the PostgreSQL database {dsn} ({what}); check SENTIMENT_DB")


# --------------------------------------------------------------------------------------------
# The backend


class _Transaction:
    """A write transaction on one pooled connection (see :class:`Transaction`)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        text, values = translate(sql, params)
        async with self._conn.transaction():  # a savepoint: a refused row undoes this only
            status: str = await self._conn.execute(text, *values)
        return _changed(status)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        if not rows:
            return 0
        width = len(rows[0])
        per = max(1, _MAX_PARAMS // max(width, 1))
        if _multi_row(sql, 1) is None:
            return sum([await self.execute(sql, row) for row in rows])
        changed = 0
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            text = _multi_row(sql, len(chunk))
            flat = [_param(v) for row in chunk for v in row]
            changed += _changed(await self._conn.execute(text, *flat))
        return changed

    async def execute_insert(self, sql: str, params: Sequence[object]) -> int | None:
        text, values = translate(sql, params)
        async with self._conn.transaction():
            row_id = await self._conn.fetchval(text + " RETURNING id", *values)
        return None if row_id is None else int(row_id)

    async def execute_fetchall(
        self, sql: str, params: Sequence[object] = ()
    ) -> list[Sequence[Any]]:
        text, values = translate(sql, params)
        return [tuple(r) for r in await self._conn.fetch(text, *values)]


class PostgresBackend:
    """A PostgreSQL database, opened by :meth:`open`: a pool of connections."""

    row_errors: tuple[type[Exception], ...] = _ROW_ERRORS
    errors: tuple[type[Exception], ...] = ERRORS

    def __init__(self, pool: Any, dsn: Dsn) -> None:
        """Private: use :meth:`PostgresBackend.open`."""
        self.path = dsn
        self.pool = pool
        self._tx_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls, dsn: Dsn, *, busy_timeout: float = 5.0, pool_size: int = POOL_SIZE
    ) -> PostgresBackend:
        """Connect (a pool of at most ``pool_size`` connections) and migrate.

        Raises StorageError, one line naming the address (password masked) and the fix, for a
        server that cannot be reached, refused credentials, a missing database, a database of
        another program or of a newer version.
        """
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        settings = {
            "application_name": "sentiment-bot",
            "lock_timeout": f"{int(busy_timeout * 1000):d}",
        }
        try:
            pool = await asyncpg.create_pool(
                dsn.reveal(),
                min_size=1,
                max_size=pool_size,
                timeout=CONNECT_TIMEOUT_S,
                server_settings=settings,
            )
        except _CONNECT_ERRORS as exc:
            raise connect_error(dsn, exc) from None
        try:
            async with pool.acquire() as conn:
                await conn.execute("SET lock_timeout = 0")  # a migration waits for another's
                try:
                    await migrate_pg(conn, dsn)
                finally:
                    await conn.execute("RESET lock_timeout")
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, StorageError):
                raise
            if isinstance(exc, ERRORS):
                raise connect_error(dsn, exc) from None
            raise
        return cls(pool, dsn)

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure_open(self) -> None:
        if self._closed:
            raise StorageError(f"storage for {self.path} is closed")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        """A write transaction (BEGIN ... COMMIT on one pooled connection), rolled back on any
        error; asyncpg resets a connection released while cancelled."""
        self._ensure_open()
        async with self._tx_lock, self.pool.acquire() as conn, conn.transaction():
            yield _Transaction(conn)

    async def execute_fetchall(
        self, sql: str, params: Sequence[object] = ()
    ) -> list[Sequence[Any]]:
        self._ensure_open()
        text, values = translate(sql, params)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(text, *values)
        return [tuple(r) for r in rows]

    def ensure_same_database(self) -> None:
        """Nothing to check: a server database cannot be swapped under an open connection (a
        dropped database ends the connections, which the writer retries)."""

    def is_corruption(self, exc: BaseException) -> bool:
        """Whether the server reports damaged data or index (SQLSTATE XX001, XX002)."""
        return getattr(exc, "sqlstate", None) in _CORRUPTION

    def breakdown(self, exc: BaseException) -> tuple[str, str]:
        return (
            f"the PostgreSQL database {self.path} reports damage ({_flat(str(exc), self.path)})",
            "Stop the bot, repair the table named (REINDEX for an index) or restore a backup",
        )

    def open_error(self, exc: BaseException) -> Exception | None:
        if isinstance(exc, ERRORS):
            return connect_error(self.path, exc)
        return None

    async def size_bytes(self) -> int:
        async with self.pool.acquire() as conn:
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
        return int(size)

    async def close(self) -> None:
        self._closed = True
        try:
            await asyncio.wait_for(self.pool.close(), CONNECT_TIMEOUT_S)
        except ERRORS:
            self.pool.terminate()


# --------------------------------------------------------------------------------------------
# The operator's read-only path


@contextlib.asynccontextmanager
async def read_only(dsn: Dsn) -> AsyncIterator[tuple[Any, int]]:
    """One connection whose transactions are read-only, to a Sentiment Bot database, and its
    schema version; StorageError (one line) for a database that is empty, not ours or newer."""
    try:
        conn = await asyncpg.connect(
            dsn.reveal(),
            timeout=CONNECT_TIMEOUT_S,
            server_settings={
                "application_name": "sentiment-history",
                "default_transaction_read_only": "on",
            },
        )
    except _CONNECT_ERRORS as exc:
        raise connect_error(dsn, exc) from None
    try:
        try:
            version, app_id, has_tables = await pg_identity(conn)
        except ERRORS as exc:
            raise connect_error(dsn, exc) from None
        check_pg_identity(dsn, version, app_id, has_tables)
        if version == 0:
            raise StorageError(f"{dsn} is empty: the bot has not written to it yet")
        yield conn, version
    finally:
        await conn.close()


async def fetch(conn: Any, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    """The rows of a shared-dialect query on a read-only connection."""
    text, values = translate(sql, params)
    return [tuple(r) for r in await conn.fetch(text, *values)]
