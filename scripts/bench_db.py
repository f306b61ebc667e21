"""The database a benchmark runs on (``--db``), for scripts/loadtest.py, loadtest_shards.py and
migrate_bench.py:

* ``sqlite`` (the default): a new SQLite file in the run's temporary folder, as the bot
  opens it (WAL, ``synchronous=FULL``);
* ``postgresql``: a throwaway PostgreSQL cluster started with scripts/pg_cluster.sh (stopped
  and deleted afterwards), run *durable* (``fsync``, ``synchronous_commit`` and
  ``full_page_writes`` on, unlike the test suite's cluster), so that it is compared fairly with
  SQLite's ``synchronous=FULL``; over a unix socket;
* ``postgresql://...``: a server of yours (a role that may create databases); each run gets a
  database of its own there, dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from bot.storage.dsn import Dsn, is_dsn

REPO = Path(__file__).resolve().parent.parent
DURABLE = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
CHOICES = "sqlite, postgresql (a throwaway durable cluster) or a postgresql:// address"


def db_choice(value: str) -> str:
    """``--db``'s type: one of :data:`CHOICES`."""
    if value in ("sqlite", "postgresql") or is_dsn(value):
        return value
    raise argparse.ArgumentTypeError(f"--db takes {CHOICES}, got {value!r}")


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=db_choice, default="sqlite", help=f"database engine: {CHOICES}"
    )


class BenchDatabases:
    """Fresh databases of one engine for a benchmark (a context manager; see the module)."""

    def __init__(self, choice: str, folder: Path) -> None:
        self.choice = choice
        self.folder = folder
        self.engine = "sqlite" if choice == "sqlite" else "postgresql"
        self._server: Dsn | None = Dsn(choice) if is_dsn(choice) else None
        self._cluster: str | None = None
        self._created: list[str] = []

    def __enter__(self) -> BenchDatabases:
        if self.choice == "postgresql":
            self._cluster = tempfile.mkdtemp(prefix="spg-", dir="/tmp")  # a short socket path
            started = subprocess.run(
                ["bash", str(REPO / "scripts" / "pg_cluster.sh"), "start", self._cluster],
                capture_output=True,
                text=True,
                env={**os.environ, "PG_CLUSTER_OPTIONS": DURABLE},
            )
            if started.returncode != 0:
                self._stop()
                raise SystemExit(f"could not start a PostgreSQL cluster: {started.stderr.strip()}")
            self._server = Dsn(started.stdout.strip().splitlines()[-1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None and self._cluster is None:  # a server of the user's
            for name in self._created:
                with contextlib.suppress(Exception):
                    _run_sql(self._server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._stop()

    def _stop(self) -> None:
        if self._cluster is not None:
            script = REPO / "scripts" / "pg_cluster.sh"
            subprocess.run(["bash", str(script), "stop", self._cluster], capture_output=True)
            self._cluster = None

    def fresh(self, label: str = "bench") -> Path | Dsn:
        """A new, empty database."""
        name = f"{label}_{uuid.uuid4().hex[:8]}"
        if self._server is None:
            return self.folder / f"{name}.db"
        _run_sql(self._server, f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self._server.with_database(name)

    def describe(self) -> str:
        if self._server is None:
            return "SQLite (WAL, synchronous=FULL), a file in a temporary folder"
        where = "a throwaway cluster over a unix socket" if self._cluster else str(self._server)
        version = _run_sql(self._server, "SHOW server_version")
        sync = _run_sql(self._server, "SHOW synchronous_commit")
        fsync = _run_sql(self._server, "SHOW fsync")
        return f"PostgreSQL {version} ({where}; fsync {fsync}, synchronous_commit {sync})"


def fetch_rows(db: Path | Dsn, sql: str) -> list[tuple[object, ...]]:
    """The rows of a query (no parameters) on either engine, read-only; callable from inside a
    running event loop."""
    if isinstance(db, Path):
        import sqlite3

        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    import asyncio
    import concurrent.futures

    import asyncpg  # type: ignore[import-untyped]

    async def go() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(db.reveal())
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def _run_sql(server: Dsn, sql: str) -> str:
    """One statement on the server, in a thread of its own (callable from inside a loop)."""
    import asyncio
    import concurrent.futures

    import asyncpg  # type: ignore[import-untyped]

    async def go() -> str:
        conn = await asyncpg.connect(server.reveal())
        try:
            if sql.startswith("SHOW"):
                return str(await conn.fetchval(sql))
            await conn.execute(sql)
            return ""
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


@contextlib.contextmanager
def bench_databases(choice: str) -> Iterator[BenchDatabases]:
    """:class:`BenchDatabases` in a temporary folder of its own."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-db-") as folder,
        BenchDatabases(choice, Path(folder)) as databases,
    ):
        yield databases
