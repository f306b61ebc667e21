#!/usr/bin/env python3
"""``sentiment db migrate`` on a large file: builds a SQLite database of the bot with
``--rows`` predictions (default 100,000) and rows in every other table (settings, channels,
opt-outs, departures, alerts, corrections), copies it into a throwaway PostgreSQL cluster
(``scripts/pg_cluster.sh``, durable, stopped and deleted afterwards; or ``--db
postgresql://...`` for a server of yours, where it creates a database), and prints the
per-table counts and checksums of both sides, whether they are equal, and the time. Then it
runs the migration again on the finished target (nothing left to copy: the resume check and
the verification alone) and times that too.

    .venv/bin/python scripts/migrate_bench.py
    .venv/bin/python scripts/migrate_bench.py --rows 1000000 --batch-rows 10000

The exit code is 1 when a count or a checksum differs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]  # bot/, and bench_db beside this script

from bench_db import bench_databases, db_choice  # noqa: E402

from bot.db_cli import migrate  # noqa: E402
from bot.storage import Storage  # noqa: E402
from bot.storage.dsn import Dsn  # noqa: E402

GUILDS = 20
T0 = 1_700_000_000.0
WORDS = ("love", "hate", "fine", "ok", "great", "awful", "héllo", "日本", "🙂", "meh")


def build_source(path: Path, rows: int, *, seed: int = 0) -> dict[str, int]:
    """Create the bot's SQLite file at ``path`` (through :class:`Storage`, so the schema is the
    bot's) and fill every table: ``rows`` predictions, the rest in proportion. Returns the rows
    written per table."""

    async def create() -> None:
        await (await Storage.open(path)).close()

    asyncio.run(create())
    rng = random.Random(seed)
    guilds = [(1_000_000 + g) << 22 for g in range(GUILDS)]
    predictions = []
    for i in range(1, rows + 1):
        source = rng.choice(("auto", "auto", "auto", "command", "context_menu"))
        three = rng.random() < 0.5
        unread = None if rng.random() < 0.95 else rng.choice(("empty", "unknown", "language:fr"))
        p_neg = None if (unread or not three) else rng.random() * 0.5
        p_neu = None if p_neg is None else rng.random() * 0.5
        text = None if rng.random() < 0.3 else " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))
        user = rng.randrange(1, 5_000)  # an automatic or /sentiment row holds its user's words
        author = rng.randrange(1, 5_000) if source == "context_menu" else user
        predictions.append(
            (
                i, rng.choice(guilds), 900 + rng.randrange(5),
                10_000_000 + i if source != "command" else None,
                user, source, rng.choice(("positive", "negative", "neutral")),
                rng.random(), rng.randrange(2), "minilm-chat-1", T0 + i * 0.123456789,
                text, p_neg, p_neu, unread, author, rng.randrange(2),
            )
        )  # fmt: skip
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO predictions (id, guild_id, channel_id, message_id, user_id, source,"
            " label, p_positive, in_band, model_version, created_at, text, p_negative,"
            " p_neutral, unread, author_id, private) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?)",
            predictions,
        )
        conn.executemany(
            "INSERT INTO guild_settings VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (g, "👍", None if i % 2 else "👎", 0.4 if i % 3 else None,
                 0.6 if i % 3 else None, i % 2, 30 + i if i % 4 else None)
                for i, g in enumerate(guilds)
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO auto_channels VALUES (?, ?)",
            [(g, 900 + c) for g in guilds for c in range(3)],
        )
        opt_outs = max(1, rows // 200)
        conn.executemany(
            "INSERT INTO opt_outs VALUES (?, ?)",
            [(5_000 + u, T0 + u / 7) for u in range(opt_outs)],
        )
        conn.executemany(
            "INSERT INTO guild_departures VALUES (?, ?)", [(g, T0 + 1.5) for g in guilds[:3]]
        )
        conn.executemany(
            "INSERT INTO alert_settings VALUES (?, ?, ?)",
            [(g, 900 if i % 2 else None, 1 + i) for i, g in enumerate(guilds[:5])],
        )
        conn.executemany(
            "INSERT INTO alert_watches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (g, 901, 0.6, 0.4, 30, 5, 60, i % 2, T0 + i if i % 2 else None,
                 77_000 + i if i % 2 else None)
                for i, g in enumerate(guilds[:5])
            ],
        )  # fmt: skip
        alerts = max(1, rows // 1_000)
        conn.executemany(
            "INSERT INTO alert_log VALUES (?, ?, ?)",
            [(guilds[i % 5], 901, T0 + i * 60.0) for i in range(alerts)],
        )
        corrections = max(1, rows // 100)
        conn.executemany(
            "INSERT INTO corrections (prediction_id, guild_id, channel_id, message_id, user_id,"
            " author_id, source, mood, model_mood, model_version, created_at, text)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (p[0], p[1], p[2], p[3], p[4], p[15], p[5], "neutral", p[6], p[9], p[10] + 5,
                 p[11])
                for p in predictions[: corrections]
            ],
        )  # fmt: skip
    return {
        "predictions": rows, "guild_settings": GUILDS, "auto_channels": GUILDS * 3,
        "opt_outs": opt_outs, "guild_departures": 3, "alert_settings": 5, "alert_watches": 5,
        "alert_log": alerts, "corrections": corrections,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="predictions (default 100000)")
    parser.add_argument("--batch-rows", type=int, default=5_000, help="rows per batch")
    parser.add_argument(
        "--db",
        type=db_choice,
        default="postgresql",
        help="the target: postgresql (a throwaway durable cluster, the default) or a "
        "postgresql:// address of a server where a database may be created",
    )
    args = parser.parse_args(argv)
    if args.db == "sqlite":
        parser.error("--db: the target of a migration is PostgreSQL")
    with bench_databases(args.db) as databases:
        source = databases.folder / "sentiment.db"
        started = time.perf_counter()
        written = build_source(source, args.rows)
        print(
            f"built {source.name}: {sum(written.values()):,} rows in {len(written)} tables "
            f"({source.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s"
        )
        target = databases.fresh("sentiment")
        assert isinstance(target, Dsn)
        print(f"target: {databases.describe()}")
        runs = []
        for what in ("migrate", "again (nothing left to copy)"):
            print(f"\n== sentiment db migrate: {what}", flush=True)
            started = time.perf_counter()
            rc = migrate(str(source), target.reveal(), args.batch_rows, progress=True)
            runs.append((what, rc, time.perf_counter() - started))
    print()
    total = sum(written.values())
    for what, rc, seconds in runs:
        verdict = "counts and checksums equal" if rc == 0 else f"FAILED (exit {rc})"
        print(
            f"{what}: {verdict}; {seconds:.1f} s"
            + (f", {total / seconds:,.0f} rows/s" if what == "migrate" else "")
        )
    return 0 if all(rc == 0 for _, rc, _ in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
