"""The sandbox's own database file, and the ``--fresh`` option that may delete it.

The sandbox runs the real bot on a database of its own (``--db``). It notes inside each
database it creates that the sandbox created it; ``--fresh`` deletes only such a file, and
never one that the bot's settings name, from any source (the environment, a ``.env`` file, the
default), under any name.
"""

from __future__ import annotations

import os
from pathlib import Path

from bot.config import DEFAULT_DATABASE
from bot.sandbox.world import UsageError
from bot.storage import Storage, read_origin, write_origin

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where scripts/run starts the bot
SANDBOX_ORIGIN = "sentiment-sandbox"  # noted inside each database the sandbox creates


async def create_sandbox_database(db: Path) -> None:
    """Create ``db`` as the bot would (schema, mode 0600), and note inside it that the sandbox
    created it, so that a later ``--fresh`` may delete it (and nothing without that note)."""
    storage = await Storage.open(db)
    await storage.close()
    write_origin(db, SANDBOX_ORIGIN)


def is_sandbox_database(db: Path) -> bool:
    """Whether ``db`` is a Sentiment Bot database that the sandbox created."""
    return read_origin(db) == SANDBOX_ORIGIN


def _dotenv_files() -> list[Path]:
    """Every ``.env`` the bot could read: python-dotenv looks from the bot's package folder
    upwards (what ``Settings.from_env`` loads); the current folder and its parents too."""
    import bot.config

    found: list[Path] = []
    for start in (Path(bot.config.__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            candidate = folder / ".env"
            if candidate.is_file() and candidate not in found:
                found.append(candidate)
    return found


def settings_databases() -> list[tuple[str, Path]]:
    """Every file the bot's settings can name as its database, from any source, with where the
    name comes from: SENTIMENT_DB in the environment and in each ``.env`` file (a relative path
    taken from the current folder, the project folder and the ``.env``'s), and the default."""
    from dotenv import dotenv_values

    here, root = Path.cwd(), PROJECT_ROOT
    sources: list[tuple[str, str | None, tuple[Path, ...]]] = [
        ("SENTIMENT_DB in the environment", os.environ.get("SENTIMENT_DB"), (here, root))
    ]
    for env_file in _dotenv_files():
        value = dotenv_values(env_file).get("SENTIMENT_DB")
        sources.append((f"SENTIMENT_DB in {env_file}", value, (here, root, env_file.parent)))
    sources.append((f"the default {DEFAULT_DATABASE}", str(DEFAULT_DATABASE), (here, root)))
    named: list[tuple[str, Path]] = []
    for source, value, bases in sources:
        if value:
            for base in bases:
                named.append((source, (base / Path(value).expanduser()).resolve()))
    return named


def remove_database(db: Path) -> bool:
    """--fresh: delete ``db`` (and its -wal, -shm) if the sandbox created it.

    Refuses (UsageError, nothing deleted) a file the bot's settings name, from any source (the
    environment, a .env file, the default), the same file under another name (a link), and any
    file without the sandbox's mark. Returns whether a database was deleted.
    """
    path = db.expanduser().resolve()
    sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    if not path.exists():
        if any(p.exists() for p in sidecars):
            raise UsageError(
                f"--fresh refuses to delete the leftover {db}-wal / -shm without their "
                "database; delete them yourself if you are sure"
            )
        return False
    for source, real in settings_databases():
        if path == real or (real.exists() and path.samefile(real)):
            raise UsageError(
                f"--fresh refuses to delete {db}: it is the bot's database ({source}); give "
                "the sandbox a file of its own with --db"
            )
    if not is_sandbox_database(path):
        raise UsageError(
            f"--fresh refuses to delete {db}: the sandbox did not create it (it has no sandbox "
            "mark); pick another --db, or delete it yourself if you are sure"
        )
    for file in (*sidecars, path):
        file.unlink(missing_ok=True)
    return True
