"""The database engines the storage tests run against: the ``engine`` and ``database`` fixtures
and the count of tests run on each, printed at the end of the run.

A test that asks for ``engine`` (or ``database``, or a fixture built on it) runs once per
engine: ``sqlite`` always, ``postgresql`` against a real server, each test in a database of its
own (``CREATE DATABASE`` before, ``DROP DATABASE`` after). The server is
``SENTIMENT_TEST_POSTGRES_DSN`` when set (a role that may create databases), else a throwaway
cluster this session starts itself with ``scripts/pg_cluster.sh`` (initdb in a temporary
folder, a unix socket there, stopped and deleted at the end) wherever PostgreSQL is installed.
Where it is not, those tests skip and say why; with ``SENTIMENT_REQUIRE_POSTGRES=1`` (CI) that
skip is a failure. ``@pytest.mark.engines("sqlite")`` keeps a test to the engines named.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.storage.dsn import Dsn

REPO = Path(__file__).resolve().parent.parent
ENGINES = ("sqlite", "postgresql")
CLUSTER_SCRIPT = REPO / "scripts" / "pg_cluster.sh"
NO_POSTGRES = (
    "PostgreSQL is not installed (no initdb on PATH nor in /usr/lib/postgresql/*/bin) and "
    "SENTIMENT_TEST_POSTGRES_DSN is not set: install it (apt-get install -y postgresql) or point "
    "SENTIMENT_TEST_POSTGRES_DSN at a server"
)

# engine -> outcome -> tests
_counts: dict[str, Counter[str]] = {engine: Counter() for engine in ENGINES}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engines(*names): run the test only on these database engines"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("engines")
    engines = marker.args if marker else ENGINES
    metafunc.parametrize("engine", engines, indirect=True)


def _installed() -> bool:
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return True
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Dsn]:
    """A PostgreSQL server for the session, as the DSN of a role that may create databases."""
    given = os.environ.get("SENTIMENT_TEST_POSTGRES_DSN", "").strip()
    if given:
        yield Dsn(given)
        return
    if not _installed():
        if os.environ.get("SENTIMENT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SENTIMENT_REQUIRE_POSTGRES=1 but {NO_POSTGRES}")
        pytest.skip(NO_POSTGRES)
    folder = tempfile.mkdtemp(prefix="spg-", dir="/tmp")  # a socket path must stay short
    started = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "start", folder], capture_output=True, text=True
    )
    try:
        if started.returncode != 0:
            pytest.fail(f"could not start a PostgreSQL cluster: {started.stderr.strip()}")
        yield Dsn(started.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", folder], capture_output=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The engine this run of the test uses (see the module)."""
    name: str = request.param
    request.node.user_properties.append(("engine", name))
    return name


async def _admin(server: Dsn, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(server.reveal())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def fresh_postgres(request: pytest.FixtureRequest) -> AsyncIterator[Dsn]:
    """An empty PostgreSQL database of this test's own (dropped afterwards)."""
    server: Dsn = request.getfixturevalue("postgres_server")
    name = f"sentiment_test_{uuid.uuid4().hex[:12]}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.with_database(name)
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | Dsn:
    """Where this test's database is: a fresh SQLite file, or a fresh PostgreSQL database."""
    if engine == "sqlite":
        return tmp_path / "sentiment.db"
    dsn: Dsn = request.getfixturevalue("fresh_postgres")
    return dsn


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    engine = dict(report.user_properties).get("engine")
    if engine is None:
        return
    if report.when == "call":
        _counts[str(engine)][report.outcome] += 1
    elif report.when == "setup" and not report.passed:  # skipped, or an error before running
        _counts[str(engine)]["skipped" if report.skipped else "errors"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not any(_counts.values()):
        return
    terminalreporter.section("tests per database engine")
    for engine, counts in _counts.items():
        ran = counts["passed"] + counts["failed"]  # the test itself ran
        detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        terminalreporter.write_line(f"{engine}: {ran} run ({detail or 'none'})")
