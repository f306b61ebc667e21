"""Moving up: copying the bot's SQLite database into PostgreSQL (``sentiment db migrate``).

* **Which tables.** Every table that :data:`bot.storage.schema.MIGRATIONS` creates, in the
  order it creates them (so ``guild_settings`` comes before ``auto_channels``, which refers to
  it): the list is read from the migrations, so a table a later version adds is copied without
  a change here. A table in the file that the schema does not know is refused (one line), except
  ``created_by``, the sandbox's note of the files it made, which is not copied. Each table's
  columns and key are read from the file (``PRAGMA table_info``) and checked against the
  target's; a table without a declared key (``alert_log``) is keyed and copied by SQLite's
  ``rowid``, which the PostgreSQL schema spells out as a column.
* **Resumable.** Rows go in batches in key order, one COPY and one COMMIT per batch; a run
  stopped anywhere (Ctrl-C, a kill, a lost connection: an unfinished batch is rolled back by the
  server) leaves whole batches behind, and the next run goes on after the target's largest key.
  It first checks that what the target holds is exactly the file's rows up to that key (count
  and checksum): a target holding other rows is refused, so nothing is duplicated or mixed.
  Identity sequences are moved past the largest id copied, so the bot's next row gets a new id.
* **Verified.** At the end each table's rows are counted and checksummed on both sides, the
  file's within the same read transaction as the copy (one consistent snapshot).
* **The checksum** (:func:`table_sum`): SHA-256 over every row of the table in key order, every
  column in the file's column order, each row one line of canonical JSON: integers as
  integers, REAL (8-byte floats on both engines) as the shortest decimal that reads back to the
  same double (so exact), text with ``\\u`` escapes for everything outside ASCII, NULL as
  ``null``. One difference is folded on purpose: a NUL character in a text is written as
  U+FFFD on both sides, because PostgreSQL's ``text`` cannot hold NUL and the bot stores it as
  U+FFFD there. Not covered: indexes, the identity sequences, PostgreSQL's ``sentiment_schema``
  row and SQLite's PRAGMAs (both say the same schema version, checked before copying).
* **The source is only read** (``mode=ro``, one read transaction). While the bot runs on it,
  the copy is the snapshot of the moment the run started; rows written later are not in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bot.storage.dsn import Dsn
from bot.storage.errors import StorageError
from bot.storage.readonly import _open_readonly
from bot.storage.schema import IDENTITY_SQL, MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "BATCH_ROWS",
    "NOT_COPIED",
    "Progress",
    "TableResult",
    "TableSpec",
    "TableSum",
    "canonical_row",
    "copy_to_postgres",
    "schema_tables",
    "table_sum",
]

BATCH_ROWS: Final = 5_000
# Tables a file may hold outside the migrated schema, and why they are not copied.
NOT_COPIED: Final = {"created_by": "the sandbox's note of the files it made"}
_KINDS: Final = {"INTEGER": "INTEGER", "REAL": "REAL", "TEXT": "TEXT"}
_PG_KINDS: Final = {
    "INTEGER": ("bigint", "integer", "smallint"),
    "REAL": ("double precision",),
    "TEXT": ("text",),
}
_IDENTIFIER: Final = re.compile(r"^[a-z_][a-z0-9_]*$")


def schema_tables() -> tuple[str, ...]:
    """The tables the migrations create, in the order they create them."""
    names: list[str] = []
    for step in MIGRATIONS:
        for statement in step:
            names += re.findall(r"^\s*CREATE TABLE (\w+)", statement)
    return tuple(names)


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise StorageError(f"the name {name!r} is not a plain SQL identifier; not copying it")
    return name


@dataclass(frozen=True)
class TableSpec:
    """A table to copy: its columns (the file's order), their kinds, its key columns."""

    name: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    key: tuple[str, ...]

    def sql(self, what: str) -> str:
        """The statement ``what`` for this table; every name checked by :func:`_identifier`."""
        q_table = _identifier(self.name)
        q_cols = ", ".join(_identifier(c) for c in self.columns)
        q_keys = ", ".join(_identifier(c) for c in self.key)
        q_marks = ", ".join("?" for _ in self.key)
        q_desc = ", ".join(f"{_identifier(c)} DESC" for c in self.key)
        statements = {
            "count": f"SELECT count(*) FROM {q_table}",
            "first": f"SELECT {q_cols} FROM {q_table} ORDER BY {q_keys} LIMIT ?",
            "after": f"SELECT {q_cols} FROM {q_table} WHERE ({q_keys}) > ({q_marks})"
            f" ORDER BY {q_keys} LIMIT ?",
            "all": f"SELECT {q_cols} FROM {q_table} ORDER BY {q_keys}",
            "upto": f"SELECT {q_cols} FROM {q_table} WHERE ({q_keys}) <= ({q_marks})"
            f" ORDER BY {q_keys}",
            "last": f"SELECT {q_keys} FROM {q_table} ORDER BY {q_desc} LIMIT 1",
        }
        return statements[what]

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(c)] for c in self.key)


@dataclass(frozen=True)
class TableSum:
    """A table's row count and checksum (see the module)."""

    rows: int
    sha256: str


@dataclass(frozen=True)
class TableResult:
    """One table after a run: the file's and the target's sums, and the rows copied now."""

    name: str
    source: TableSum
    target: TableSum
    copied: int

    @property
    def equal(self) -> bool:
        return self.source == self.target


# A progress report: called with a table, its rows in the file and those already in the
# target; gives back a function called with each batch's rows once it is committed.
Progress = Callable[[str, int, int], contextlib.AbstractContextManager[Callable[[int], None]]]


# --------------------------------------------------------------------------------------------
# Rows and their checksum


def _normalise(spec: TableSpec, row: Sequence[Any]) -> tuple[Any, ...]:
    """The row's values as both engines store them: ints, floats, text with NUL as U+FFFD."""
    out: list[Any] = []
    for column, kind, value in zip(spec.columns, spec.kinds, row, strict=True):
        if value is None:
            out.append(None)
        elif kind == "REAL" and isinstance(value, int | float) and not isinstance(value, bool):
            out.append(float(value))
        elif kind == "INTEGER" and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            out.append(int(value))
        elif kind == "TEXT" and isinstance(value, str):
            out.append(value.replace("\x00", "\ufffd"))
        else:
            raise StorageError(
                f"{spec.name}.{column} holds {value!r} ({type(value).__name__}) where the schema "
                f"says {kind}, in the row with key {spec.key_of(row)}; fix or delete that row"
            )
    return tuple(out)


def canonical_row(spec: TableSpec, row: Sequence[Any]) -> bytes:
    """One row as the checksum reads it (see the module): a line of canonical JSON."""
    values = _normalise(spec, row)
    return json.dumps(values, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"


def table_sum(spec: TableSpec, rows: Iterable[Sequence[Any]]) -> TableSum:
    """The count and checksum of ``rows`` (a table's rows in key order)."""
    digest = hashlib.sha256()
    n = 0
    for row in rows:
        digest.update(canonical_row(spec, row))
        n += 1
    return TableSum(n, digest.hexdigest())


# --------------------------------------------------------------------------------------------
# The file


@contextlib.contextmanager
def _source(path: Path) -> Iterator[tuple[sqlite3.Connection, list[TableSpec]]]:
    """The file opened read-only in one read transaction, and its tables; StorageError (one
    line) for a file that is not this bot's, of another schema version, or with an unknown
    table."""
    with _open_readonly(path) as (conn, resolved, version):
        if version != SCHEMA_VERSION:  # a newer one was refused by _open_readonly
            raise StorageError(
                f"{resolved} has schema {version}, older than this version's {SCHEMA_VERSION}; "
                "start this version of the bot on it once (it upgrades the file), then migrate"
            )
        conn.execute("BEGIN")  # one snapshot for the copy and the checks
        try:
            if conn.execute(IDENTITY_SQL).fetchone()[0] != SCHEMA_VERSION:
                raise StorageError(f"{resolved} was upgraded just now; run the migration again")
            yield conn, _source_tables(conn, resolved)
        finally:
            conn.rollback()


def _source_tables(conn: sqlite3.Connection, path: Path) -> list[TableSpec]:
    present = {
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
    }
    known = schema_tables()
    unknown = sorted(present - set(known) - set(NOT_COPIED))
    if unknown:
        raise StorageError(
            f"{path} holds tables this version does not know ({', '.join(unknown)}); "
            "a newer version of the bot may know them: migrate with that one"
        )
    missing = [name for name in known if name not in present]
    if missing:
        raise StorageError(f"{path} lacks the tables {', '.join(missing)} of its schema version")
    specs = []
    for name in known:
        info = conn.execute("SELECT name, type, pk FROM pragma_table_info(?)", [name]).fetchall()
        columns = [str(r[0]) for r in info]
        kinds = [_KINDS.get(str(r[1]).upper(), "") for r in info]
        if "" in kinds:
            raise StorageError(f"{path}: a column of {name} has a type this copy does not know")
        key = [str(r[0]) for r in sorted((r for r in info if r[2]), key=lambda r: int(r[2]))]
        if not key:  # no declared key: SQLite's rowid, a column on PostgreSQL
            columns, kinds, key = ["rowid", *columns], ["INTEGER", *kinds], ["rowid"]
        if any(kinds[columns.index(k)] != "INTEGER" for k in key):
            raise StorageError(f"{path}: the key of {name} is not made of integers")
        specs.append(TableSpec(name, tuple(columns), tuple(kinds), tuple(key)))
    return specs


def _source_rows(
    conn: sqlite3.Connection, spec: TableSpec, upto: tuple[Any, ...] | None
) -> Iterator[Sequence[Any]]:
    sql = spec.sql("all" if upto is None else "upto")
    yield from conn.execute(sql, upto or ())


# --------------------------------------------------------------------------------------------
# The target


def _pg(sql: str) -> str:
    from bot.storage.postgres import translate

    return translate(sql, [None] * sql.count("?"))[0]


async def _check_target_table(conn: Any, spec: TableSpec, dsn: Dsn) -> list[str]:
    """Raise StorageError unless the target's table has the same columns of the same kinds;
    return its identity columns."""
    rows = await conn.fetch(
        "SELECT column_name, data_type, is_identity FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1",
        spec.name,
    )
    theirs = {str(r[0]): str(r[1]) for r in rows}
    mine = dict(zip(spec.columns, spec.kinds, strict=True))
    if set(theirs) != set(mine) or any(theirs[c] not in _PG_KINDS[k] for c, k in mine.items()):
        raise StorageError(
            f"the table {spec.name} of {dsn} does not have the columns of the file's "
            f"({', '.join(spec.columns)}); migrate into an empty database"
        )
    return [str(r[0]) for r in rows if r[2] == "YES"]


async def _target_rows(
    conn: Any, spec: TableSpec, upto: tuple[Any, ...] | None
) -> AsyncIterator[Sequence[Any]]:
    sql = _pg(spec.sql("all" if upto is None else "upto"))
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(sql, *(upto or ()), prefetch=BATCH_ROWS):
            yield tuple(row)


async def _target_sum(conn: Any, spec: TableSpec, upto: tuple[Any, ...] | None) -> TableSum:
    """:func:`table_sum` of the target's rows, streamed."""
    digest = hashlib.sha256()
    n = 0
    async for row in _target_rows(conn, spec, upto):
        digest.update(canonical_row(spec, row))
        n += 1
    return TableSum(n, digest.hexdigest())


# --------------------------------------------------------------------------------------------
# The copy


async def _copy_table(
    source: sqlite3.Connection,
    conn: Any,
    spec: TableSpec,
    dsn: Dsn,
    batch_rows: int,
    progress: Progress,
) -> int:
    identities = await _check_target_table(conn, spec, dsn)
    last_row = await conn.fetchrow(_pg(spec.sql("last")))
    last = None if last_row is None else tuple(last_row)
    held = 0
    if last is not None:
        theirs = await _target_sum(conn, spec, last)
        mine = table_sum(spec, _source_rows(source, spec, last))
        if theirs != mine:
            raise StorageError(
                f"{dsn} already holds rows in {spec.name} that are not this file's (up to key "
                f"{last}: {theirs.rows} rows there, {mine.rows} in the file, or the same count "
                "with other values); migrate into an empty database (createdb) or drop that one"
            )
        held = theirs.rows
    count, first, after = spec.sql("count"), spec.sql("first"), spec.sql("after")
    total = int(source.execute(count).fetchone()[0])
    copied = 0
    with progress(spec.name, total, held) as advance:
        while True:
            if last is None:
                batch = source.execute(first, [batch_rows]).fetchall()
            else:
                batch = source.execute(after, [*last, batch_rows]).fetchall()
            if not batch:
                break
            records = [_normalise(spec, row) for row in batch]
            async with conn.transaction():
                await conn.copy_records_to_table(
                    spec.name, records=records, columns=list(spec.columns)
                )
            last = spec.key_of(batch[-1])
            copied += len(batch)
            advance(len(batch))
    for column in identities:  # the next id the bot takes comes after the ones copied
        q_col, q_table = _identifier(column), _identifier(spec.name)
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence($1, $2), m) FROM (SELECT max({q_col}) AS m"
            f" FROM {q_table}) AS t WHERE m IS NOT NULL",
            spec.name,
            column,
        )
    return copied


@contextlib.contextmanager
def _silent(table: str, total: int, done: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


async def copy_to_postgres(
    source: Path,
    target: Dsn,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress = _silent,
    on_checked: Callable[[list[TableSpec]], None] | None = None,
) -> list[TableResult]:
    """Copy every table of the bot's SQLite file ``source`` into the PostgreSQL database
    ``target`` (migrated to the same schema version first if empty), going on from where an
    earlier run stopped, then count and checksum both sides. StorageError (one line) for a
    source or target refused (see the module); the results say whether each table is equal."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    from bot.storage.postgres import ERRORS, PostgresBackend, _flat

    with _source(source) as (conn, specs):
        if on_checked is not None:
            on_checked(specs)
        backend = await PostgresBackend.open(target, pool_size=1)
        try:
            async with backend.pool.acquire() as pg:
                return await _copy_all(conn, pg, specs, target, batch_rows, progress)
        except ERRORS as exc:
            what = _flat(str(exc) or type(exc).__name__, target)
            raise StorageError(
                f"the copy into {target} stopped ({what}); the batches committed stay: run the "
                "same command again to go on"
            ) from None
        finally:
            await backend.close()


async def _copy_all(
    conn: sqlite3.Connection,
    pg: Any,
    specs: list[TableSpec],
    target: Dsn,
    batch_rows: int,
    progress: Progress,
) -> list[TableResult]:
    copied = {
        spec.name: await _copy_table(conn, pg, spec, target, batch_rows, progress) for spec in specs
    }
    return [
        TableResult(
            spec.name,
            table_sum(spec, _source_rows(conn, spec, None)),
            await _target_sum(pg, spec, None),
            copied[spec.name],
        )
        for spec in specs
    ]
