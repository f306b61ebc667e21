"""Security: history about others only for moderators (every query path), admin commands only
with Manage Server, the token never shown, a private database file, and SQL that never carries
a value in its text."""

from __future__ import annotations

import ast
import dataclasses
import logging
import os
import re
import sqlite3
import stat
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
import pytest
from e2e_support import (
    ALICE,
    BOB,
    GENERAL,
    GUILD,
    MOD,
    OWNER,
    RANDOM,
    World,
    buttons,
    open_world,
)

from bot import storage as storage_module
from bot.app import create_bot
from bot.cli import main as bot_main
from bot.config import Secret, Settings
from bot.storage import PredictionRecord, Storage
from bot.storage import privacy as storage_privacy
from bot.storage import queries as storage_queries
from fakediscord import ClientDiedError, FakeDiscord, Reply, running_client
from model import SentimentClassifier
from model.settings import SettingsError

REPO = Path(__file__).resolve().parent.parent
MANAGER = 900_000_000_000_001_010  # Manage Server, not Manage Messages
MANAGER_ROLE = 900_000_000_000_000_202
MANAGE_GUILD = 1 << 5
REFUSED_MEMBER = "Only members with Manage Messages or Manage Server can see someone else's"
REFUSED_CHANNEL = "Only members with Manage Messages or Manage Server can see a channel's"
REFUSED_PAGER = "Only the person who asked for this history can turn its pages"
NEEDS_MANAGE_SERVER = "You need the Manage Server permission to use this command."

# A plausible bot token (the fake accepts only this one in the token tests).
TOKEN = "MTE5MTUzMTMwMjA5MjkzMTA3Mw.Gx7yQk.Zq3-sEcReT_t0kEn_vAlUe-0123456789abcdefghij"


def record(user: int, text: str, *, i: int, channel: int = GENERAL) -> PredictionRecord:
    return PredictionRecord(
        guild_id=GUILD,
        channel_id=channel,
        message_id=None,
        user_id=user,
        source="command",
        label="positive" if i % 2 else "negative",
        p_positive=0.9 if i % 2 else 0.1,
        in_band=False,
        model_version="test",
        created_at=datetime.now(UTC) - timedelta(minutes=i),
        text=text,
    )


async def seed_history(world: World) -> None:
    """12 predictions with text for alice and for bob in #general, one each in #random."""
    for i in range(12):
        await world.bot.storage.add(record(ALICE, f"alice-secret-{i}", i=i))
        await world.bot.storage.add(record(BOB, f"bob-secret-{i}", i=i))
    await world.bot.storage.add(record(ALICE, "alice-secret-random", i=0, channel=RANDOM))
    await world.bot.storage.add(record(BOB, "bob-secret-random", i=0, channel=RANDOM))


async def add_manager(world: World) -> None:
    """A member whose role has Manage Server, announced to the bot as Discord would."""
    guild = world.fake.guilds[GUILD]
    role = guild.add_role(MANAGER_ROLE, "managers", MANAGE_GUILD)
    guild.add_member(MANAGER, "manager", roles=[MANAGER_ROLE])
    await world.fake.dispatch(
        "GUILD_ROLE_CREATE", {"guild_id": str(GUILD), "role": role.to_payload()}
    )


async def click(world: World, reply: Reply, label: str, user: int) -> Reply:
    interaction = await world.fake.click_button(
        reply.message_id,
        buttons(reply)[label]["custom_id"],
        user_id=user,
        channel_id=GENERAL,
        guild_id=GUILD,
    )
    return await interaction.wait_for_reply()


def assert_shows_nothing_of(reply: Reply, *owners: str) -> None:
    for owner in owners:
        assert f"{owner}-secret" not in reply.text, reply.text


# --------------------------------------------------------------------------------------------
# 1. History about others: only with Manage Messages or Manage Server, on every query path


async def test_a_member_sees_only_their_own_history_on_every_query_path(world: World) -> None:
    await seed_history(world)

    refused = await world.slash("history", {"member": ALICE}, user=BOB)
    assert refused.ephemeral and REFUSED_MEMBER in refused.text
    assert_shows_nothing_of(refused, "alice", "bob")
    for options in ({"channel": GENERAL}, {"mood": "positive", "days": 30}):
        refused = await world.slash("channel-history", {"channel": GENERAL, **options}, user=BOB)
        assert refused.ephemeral and REFUSED_CHANNEL in refused.text
        assert_shows_nothing_of(refused, "alice", "bob")
    refused = await world.slash("history", {"member": ALICE, "channel": GENERAL}, user=BOB)
    assert REFUSED_MEMBER in refused.text

    # Their own history, whatever the filters: only theirs, privately, without user mentions.
    for options in (
        {},
        {"member": BOB},
        {"channel": GENERAL},
        {"channel": RANDOM},
        {"mood": "positive", "days": 1},
    ):
        own = await world.slash("history", dict(options), user=BOB)
        assert own.ephemeral and "Your sentiment history" in own.text, options
        assert "bob-secret" in own.text
        assert_shows_nothing_of(own, "alice")
        assert f"<@{ALICE}>" not in own.text

    # /mood is for everyone: counts and a chart, never a text or a member.
    for options in ({}, {"channel": GENERAL}, {"days": 1, "private": True}):
        mood = await world.slash("mood", dict(options), user=BOB)
        assert "predictions" in mood.text
        assert "secret" not in mood.text and "<@" not in mood.text
        assert "alice" not in mood.text.lower() and "bob" not in mood.text.lower()
        assert [f.filename for f in mood.files] == ["mood.png"]


async def test_pages_of_a_history_turn_only_for_the_person_who_asked(world: World) -> None:
    await seed_history(world)
    own = await world.slash("history", user=ALICE)  # 13 predictions: two pages
    by_mod = await world.slash("history", {"member": ALICE}, user=MOD)
    channel = await world.slash("channel-history", {"channel": GENERAL}, user=MOD)
    assert "page 1 of 2" in own.text and "page 1 of 2" in by_mod.text
    assert "page 1 of 3" in channel.text
    for reply, owner in ((own, ALICE), (by_mod, MOD), (channel, MOD)):
        for someone_else in {ALICE, BOB, MOD, OWNER} - {owner}:
            refusal = await click(world, reply, "Older ▶", someone_else)
            assert refusal.ephemeral and REFUSED_PAGER in refusal.text
            assert refusal.message_id != reply.message_id
            assert_shows_nothing_of(refusal, "alice", "bob")
        unchanged = world.fake.messages[reply.message_id].embeds[0]["footer"]["text"]
        assert unchanged.startswith("page 1 of")
        turned = await click(world, reply, "Older ▶", owner)
        assert "page 2 of" in turned.text and turned.message_id == reply.message_id


async def test_moderators_may_see_members_and_channels(world: World) -> None:
    await seed_history(world)
    await add_manager(world)
    for moderator in (MOD, MANAGER, OWNER):  # Manage Messages; Manage Server; the owner
        alice = await world.slash("history", {"member": ALICE}, user=moderator)
        assert alice.ephemeral and "alice's sentiment history" in alice.text
        assert "alice-secret" in alice.text
        assert_shows_nothing_of(alice, "bob")
        channel = await world.slash("channel-history", {"channel": RANDOM}, user=moderator)
        assert channel.ephemeral and "Sentiment history of #random" in channel.text
        assert "alice-secret-random" in channel.text and "bob-secret-random" in channel.text
        assert "alice-secret-1" not in channel.text  # #general stays out of it


# --------------------------------------------------------------------------------------------
# 2. /sentiment-admin: Manage Server, checked by the bot itself


ADMIN_OPTIONS: dict[str, dict[str, object]] = {
    "show": {},
    "reactions": {"channel": RANDOM, "enabled": True},
    "emoji": {"positive": "🎉", "negative": "😡"},
    "band": {"low": 0.1, "high": 0.9},
    "store-text": {"enabled": True},
    "retention": {"days": 7},
}


async def test_every_admin_subcommand_needs_manage_server(world: World) -> None:
    await add_manager(world)
    admin = next(c for c in world.fake.synced_commands[GUILD] if c["name"] == "sentiment-admin")
    subcommands = {o["name"] for o in admin["options"] if o["type"] == 1}
    assert subcommands == set(ADMIN_OPTIONS), "a new subcommand needs a case here"

    # Discord hides the command from members without Manage Server (the fake refuses too)...
    for subcommand, options in ADMIN_OPTIONS.items():
        for user in (ALICE, MOD):
            with pytest.raises(PermissionError, match="cannot see command 'sentiment-admin'"):
                await world.fake.invoke_slash(
                    "sentiment-admin",
                    options,
                    user_id=user,
                    channel_id=GENERAL,
                    guild_id=GUILD,
                    subcommand=subcommand,
                )
    # ...but a server can open it to everyone: the bot refuses at run time, changing nothing.
    admin["default_member_permissions"] = None
    before = await world.bot.storage.guild_settings(GUILD)
    for subcommand, options in ADMIN_OPTIONS.items():
        for user in (ALICE, MOD):
            reply = await world.slash("sentiment-admin", options, user=user, subcommand=subcommand)
            assert reply.ephemeral and reply.text == NEEDS_MANAGE_SERVER, (subcommand, user)
    assert await world.bot.storage.guild_settings(GUILD) == before
    world.bot.storage._settings.clear()  # the file agrees with the cache
    assert await world.bot.storage.guild_settings(GUILD) == before

    for user in (MANAGER, OWNER):
        for subcommand, options in ADMIN_OPTIONS.items():
            reply = await world.slash("sentiment-admin", options, user=user, subcommand=subcommand)
            assert reply.ephemeral and "Sentiment Bot settings" in reply.text, (subcommand, user)
    after = await world.bot.storage.guild_settings(GUILD)
    assert (after.positive_emoji, after.band, after.retention_days) == ("🎉", (0.1, 0.9), 7)


# --------------------------------------------------------------------------------------------
# 3. The token never appears in logs, errors or reprs


def formatted(record: logging.LogRecord) -> str:
    """Everything a log handler could write for ``record``: message, args, traceback, stack."""
    text = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return "\n".join([text, repr(record.args), record.exc_text or "", record.stack_info or ""])


def test_settings_and_their_errors_never_show_the_token() -> None:
    settings = Settings.from_env({"DISCORD_TOKEN": TOKEN})
    assert settings.token.reveal() == TOKEN
    shown = [repr(settings), str(settings), f"{settings}", repr(settings.model_dump())]
    shown += [repr(settings.token), str(settings.token), f"{settings.token!s:>10}"]
    assert all(TOKEN not in text for text in shown)
    assert "********" in repr(settings)

    bad = [
        {"DISCORD_TOKEN": TOKEN[:40]},  # too short
        {"DISCORD_TOKEN": TOKEN[:30] + " " + TOKEN[30:]},  # a space inside
        {"DISCORD_TOKEN": TOKEN, "SENTIMENT_LOG_LEVEL": "LOUD"},
        {"DISCORD_TOKEN": TOKEN, "SENTIMENT_MAX_BATCH": "-1"},
    ]
    for env in bad:
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(env)
        text = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
        for secret in (TOKEN, TOKEN[:30], TOKEN[30:], TOKEN[:40]):
            assert secret not in text, env


def test_sentiment_bot_prints_a_bad_token_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the repository
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN[:45])
    assert bot_main([]) == 2
    out, err = capsys.readouterr()
    assert "DISCORD_TOKEN does not look like a bot token" in err
    assert TOKEN[:45] not in out + err


async def test_the_token_never_reaches_logs_or_reprs(
    tmp_path: Path, classifier: SentimentClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    """The bot and discord.py at DEBUG, through failures, while the token is really in use."""
    caplog.set_level(logging.DEBUG)
    async with open_world(tmp_path, classifier, token=TOKEN) as world:
        fake = world.fake
        # Failing reactions: refused, gone, rejected.
        for status in (403, 404, 400):
            fault = fake.fail_next("PUT", r"/reactions/", status)
            await fake.send_message(GENERAL, ALICE, "I love this so much, what a great day!")
            await fake.wait_for(lambda fault=fault: fault.hits == 1, timeout=30)
        # An interaction answered too late (Discord: 404 Unknown interaction): the bot logs it.
        fake.interaction_timeout = 0.0
        await fake.invoke_slash(
            "sentiment", {"text": "too late"}, user_id=ALICE, channel_id=GENERAL, guild_id=GUILD
        )

        def expiry_logged() -> bool:
            return any(
                r.name.startswith("bot.") and r.levelno >= logging.WARNING and "/sentiment" in m
                for r in caplog.records
                for m in [r.getMessage()]
            )

        await fake.wait_for(expiry_logged, timeout=30, description="a log of the expired reply")
        fake.interaction_timeout = 3.0
        await world.slash("history", user=ALICE)
        await world.settle()
        reprs = [repr(world.bot), repr(world.bot.settings), str(world.bot.settings)]
        reprs += [repr(world.bot.http), repr(world.bot.tree), repr(world.bot.storage)]
    # The token was really in use: sent to the fake, which refuses any other.
    assert any(r.headers.get("Authorization") == f"Bot {TOKEN}" for r in fake.requests)
    assert any(f.get("op") == 2 and f["d"]["token"] == TOKEN for f in fake.gateway_received)
    # ...and discord.py's DEBUG logs were captured (requests, gateway events).
    assert any(r.name == "discord.http" and r.levelno == logging.DEBUG for r in caplog.records)
    assert any(r.name == "discord.gateway" for r in caplog.records)
    leaks = [formatted(r) for r in caplog.records if TOKEN in formatted(r)]
    assert leaks == []
    assert all(TOKEN not in text for text in reprs)


async def test_a_refused_token_is_not_logged_either(
    tmp_path: Path, classifier: SentimentClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = TOKEN[::-1]
    async with FakeDiscord(bot_name="Sentiment Bot", token=TOKEN) as fake:
        settings = Settings(token=Secret(wrong), database=tmp_path / "bot.db")
        bot = await create_bot(settings, classifier=classifier, guild_ready_timeout=0.1)
        with pytest.raises(ClientDiedError) as died:
            async with running_client(bot, fake, token=wrong, strict=False):
                pass
    assert isinstance(died.value.__cause__, discord.LoginFailure)
    errors = "".join(traceback.format_exception(died.value))
    assert wrong not in errors and TOKEN not in errors
    assert [formatted(r) for r in caplog.records if wrong in formatted(r)] == []


# --------------------------------------------------------------------------------------------
# 4. The database file


@pytest.fixture
def no_umask() -> Iterator[None]:
    """umask 0: only the modes the code asks for protect the files."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_database_and_its_folders_are_private(tmp_path: Path, no_umask: None) -> None:
    path = tmp_path / "new" / "nested" / "bot.db"
    storage = await Storage.open(path)
    try:
        await storage.add(record(ALICE, "x", i=0))
        files = [path, path.with_name("bot.db-wal"), path.with_name("bot.db-shm")]
        assert {p.name: oct(mode(p)) for p in files} == {p.name: "0o600" for p in files}
        folders = [tmp_path / "new", tmp_path / "new" / "nested"]
        assert {str(p): oct(mode(p)) for p in folders} == {str(p): "0o700" for p in folders}
    finally:
        await storage.close()


async def test_an_existing_database_readable_by_others_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.db"
    await (await Storage.open(path)).close()
    path.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="bot.storage")
    await (await Storage.open(path)).close()
    assert any("can be read by other users" in r.getMessage() for r in caplog.records)
    assert mode(path) == 0o644  # reported, not changed behind the owner's back


# --------------------------------------------------------------------------------------------
# 5. SQL: values only ever travel as parameters

_EXECUTE = {"execute", "executemany", "execute_fetchall", "executescript", "execute_insert"}
_SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|DROP|ALTER|WHERE|VALUES|FROM|SET|AND|OR)\b"
    r"|=\s*\?"
)
# Every piece of SQL text that is not a literal, with why it cannot carry a value. A new one
# must be reviewed and added here; anything else fails the test.
_REVIEWED_FRAGMENTS = {
    "_COLUMNS": "a constant: the column list",
    "_MOOD_SQL": "a constant CASE expression",
    "where": "built by _where() from constant clauses; every value is a ? parameter",
    "' AND '.join(clauses)": "_where()'s clauses: constant strings only (checked below)",
    "_placeholders(len(chunk))": "'?, ?, ...': question marks only",
    "assignments": "'column = ?' for column names from a fixed list (checked at run time)",
    "column": "a column name from update_guild_settings' fixed list",
    "int(busy_timeout * 1000)": "an int, formatted :d (PRAGMA takes no parameters)",
    "SCHEMA_VERSION": "an int constant, formatted :d",
    "APPLICATION_ID": "an int constant, formatted :d",
    # bot/storage/transfer.py (sentiment db migrate): names of the schema's own tables and
    # columns, each checked by transfer._identifier() (a plain identifier or a StorageError)
    "q_table": "a table name of schema.MIGRATIONS, checked by _identifier()",
    "q_cols": "column names read from that table, each checked by _identifier()",
    "q_keys": "its key columns, each checked by _identifier()",
    "q_col": "an identity column of that table, checked by _identifier()",
    "q_desc": "'key DESC, ...' of its key columns, each checked by _identifier()",
    "q_marks": "'?, ?, ...': question marks only",
}
_INT_FRAGMENTS = {"int(busy_timeout * 1000)", "SCHEMA_VERSION", "APPLICATION_ID"}


def _constant_text(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_constant_text(v) for v in node.values)
    return ""


def _sql_building_problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    problems = []
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.JoinedStr) and _SQL_WORDS.search(_constant_text(node)):
            for value in node.values:
                if not isinstance(value, ast.FormattedValue):
                    continue
                piece = ast.unparse(value.value)
                if piece not in _REVIEWED_FRAGMENTS:
                    problems.append(f"{line}: f-string SQL interpolates {piece!r}")
                elif piece in _INT_FRAGMENTS:
                    spec = ast.unparse(value.format_spec) if value.format_spec else ""
                    if "d" not in spec:
                        problems.append(f"{line}: {piece} must be formatted with :d")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            if _SQL_WORDS.search(_constant_text(node.left)):
                problems.append(f"{line}: SQL built with % formatting")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            for side, other in ((node.left, node.right), (node.right, node.left)):
                piece = ast.unparse(other)
                if (
                    _SQL_WORDS.search(_constant_text(side))
                    and _constant_text(other) == ""
                    and piece not in _REVIEWED_FRAGMENTS
                ):
                    problems.append(f"{line}: SQL + {piece!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "format" and _SQL_WORDS.search(_constant_text(node.func.value)):
                problems.append(f"{line}: SQL built with str.format")
            if node.func.attr in _EXECUTE and node.args:
                sql = node.args[0]
                if path.parent.name != "storage":
                    problems.append(f"{line}: SQL outside bot/storage/")
                elif not isinstance(sql, ast.Constant | ast.Name | ast.Subscript | ast.JoinedStr):
                    problems.append(f"{line}: {node.func.attr} of {ast.unparse(sql)!r}")
            clause = node.args[0] if node.args else None
            constant = isinstance(clause, ast.Constant) and isinstance(clause.value, str)
            if ast.unparse(node.func) == "clauses.append" and not constant:
                problems.append(f"{line}: a WHERE clause that is not a constant")
    return problems


def test_sql_text_is_built_only_from_reviewed_fragments() -> None:
    """No value can be spliced into SQL text: every dynamic piece is one reviewed above."""
    files = sorted((REPO / "bot").rglob("*.py")) + sorted((REPO / "model").rglob("*.py"))
    problems = [p for path in files for p in _sql_building_problems(path)]
    assert problems == []
    # the fragments are what they claim to be
    assert isinstance(storage_queries._COLUMNS, str) and isinstance(storage_queries._MOOD_SQL, str)
    assert storage_privacy._placeholders(3) == "?, ?, ?"


def test_the_sql_scan_catches_a_spliced_value(tmp_path: Path) -> None:
    spliced = tmp_path / "storage" / "spliced.py"
    spliced.parent.mkdir()
    spliced.write_text(
        "async def f(db, user, name, where):\n"
        "    await db.execute(f'SELECT * FROM predictions WHERE user = {user}')\n"
        "    await db.execute('DELETE FROM predictions WHERE text = %s' % name)\n"
        "    await db.execute('UPDATE x SET a = {}'.format(name))\n"
        "    await db.execute('SELECT 1 FROM predictions WHERE ' + name)\n"
        "    await db.execute(f'SELECT {_COLUMNS} FROM predictions {where}')\n"
        "    clauses.append(f'user = {user}')\n"
        "    await db.execute(name.strip())\n",
        encoding="utf-8",
    )
    problems = _sql_building_problems(spliced)
    flagged = {int(p.split(":")[1]) for p in problems}
    assert flagged == {2, 3, 4, 5, 7, 8}, problems  # all but the reviewed line 6
    assert any("f-string SQL interpolates 'user'" in p for p in problems)
    assert any("% formatting" in p for p in problems)
    assert any("str.format" in p for p in problems)


class _Recorder:
    """Every SQL text given to SQLite while installed (any connection, any thread)."""

    def __init__(self) -> None:
        self.statements: set[str] = set()
        recorder = self

        class Cursor(sqlite3.Cursor):
            def execute(self, sql: str, parameters: Any = (), /) -> Any:
                recorder.statements.add(sql)
                return super().execute(sql, parameters)

            def executemany(self, sql: str, parameters: Any, /) -> Any:
                recorder.statements.add(sql)
                return super().executemany(sql, parameters)

            def executescript(self, sql: str, /) -> Any:
                recorder.statements.add(sql)
                return super().executescript(sql)

        class Connection(sqlite3.Connection):
            def cursor(self, factory: Any = Cursor) -> Any:
                return super().cursor(factory)

            def execute(self, sql: str, parameters: Any = (), /) -> Any:
                recorder.statements.add(sql)
                return super().execute(sql, parameters)

            def executemany(self, sql: str, parameters: Any, /) -> Any:
                recorder.statements.add(sql)
                return super().executemany(sql, parameters)

            def executescript(self, sql: str, /) -> Any:
                recorder.statements.add(sql)
                return super().executescript(sql)

        self.connection_class = Connection


@pytest.fixture
def sql_recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    recorder = _Recorder()
    connect = sqlite3.connect

    def recording_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", recorder.connection_class)
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", recording_connect)  # aiosqlite calls it too
    return recorder


MARK = "xyzzy"
SQL_TEXTS = [
    f"{MARK} '); DROP TABLE predictions; --",
    f"Robert{MARK}'); DELETE FROM opt_outs WHERE ('1'='1",
    f"{MARK} 1 OR 1=1; UPDATE guild_settings SET store_auto_text = 0; --",
    f'{MARK} %s %d ? ?1 :name @p $1 \\ " ` ; /* */',
]
_COLUMN_NAMES = {
    "positive_emoji",
    "negative_emoji",
    "band_low",
    "band_high",
    "store_auto_text",
    "retention_days",
}


async def test_sql_looking_input_goes_through_every_command_without_effect(
    tmp_path: Path, classifier: SentimentClassifier, sql_recorder: _Recorder
) -> None:
    async with open_world(tmp_path, classifier) as world:
        storage = world.bot.storage
        tables = await storage._fetchall(("SELECT name FROM sqlite_master ORDER BY name", []))
        await world.slash("sentiment-admin", {"enabled": True}, user=OWNER, subcommand="store-text")
        for text in SQL_TEXTS:
            reply = await world.slash("sentiment", {"text": text}, user=ALICE)
            # an answer (which one depends on the model: bars, or why the text was not read)
            assert any(
                what in reply.text
                for what in ("Confidence", "Probabilities", "Not read", "Nothing to read")
            ), reply.text
            message = await world.fake.send_message(GENERAL, BOB, text)
            interaction = await world.fake.invoke_message_command(
                "Analyze sentiment",
                target_message_id=message,
                user_id=ALICE,
                channel_id=GENERAL,
                guild_id=GUILD,
            )
            await interaction.wait_for_reply()
            for emoji in (text, f"<:{text}:123456789012345678>"):
                refused = await world.slash(
                    "sentiment-admin", {"positive": emoji}, user=OWNER, subcommand="emoji"
                )
                assert "is not an emoji" in refused.text
        await world.settle()
        for options, user in (
            ({}, ALICE),
            ({"member": BOB, "mood": "negative", "days": 1}, MOD),
            ({"channel": GENERAL, "mood": "positive"}, BOB),
        ):
            shown = await world.slash("history", options, user=user)
            assert "history" in shown.text
        await world.slash("channel-history", {"channel": GENERAL, "days": 7}, user=MOD)
        await world.slash("mood", {"days": 1, "channel": GENERAL}, user=ALICE)
        for subcommand, options in ADMIN_OPTIONS.items():
            await world.slash("sentiment-admin", options, user=OWNER, subcommand=subcommand)
        await world.slash("sentiment-admin", {}, user=OWNER, subcommand="band")  # reset

        # A forged choice (Discord itself only sends listed values): refused, nothing shown.
        history = next(c for c in world.fake.synced_commands[GUILD] if c["name"] == "history")
        for option in history["options"]:
            option.pop("choices", None)
        forged = await world.slash("history", {"mood": SQL_TEXTS[0]}, user=ALICE)
        assert forged.ephemeral and "secret" not in forged.text and "'" not in forged.text

        # Straight into storage: settings and versions that look like SQL are kept verbatim.
        settings = await storage.update_guild_settings(GUILD, negative_emoji=SQL_TEXTS[1][:100])
        assert settings.negative_emoji == SQL_TEXTS[1][:100]
        await storage.add(
            dataclasses.replace(record(BOB, SQL_TEXTS[2], i=0), model_version=SQL_TEXTS[3])
        )
        await storage.delete_messages([2**63 - 1])
        menu_rows = [r for r in await world.rows() if r.source == "context_menu"]
        assert {r.text for r in menu_rows} == set(SQL_TEXTS)
        assert {r.author_id for r in menu_rows} == {BOB}
        await world.slash("forget-me", user=BOB)
        await world.slash("opt-in", user=BOB)

        rows = await world.rows()
        assert await storage._fetchall(("SELECT name FROM sqlite_master ORDER BY name", [])) == (
            tables
        )
        assert {r.text for r in rows if r.source == "command"} == set(SQL_TEXTS)
        # alice's menu rows held bob's words: they went with bob's /forget-me
        assert not any(r.source == "context_menu" for r in rows)
        assert all(r.user_id == ALICE for r in rows)  # bob's were forgotten, nothing else
        ids = {str(i) for i in (GUILD, GENERAL, RANDOM, ALICE, BOB, MOD, OWNER)}

    statements = sql_recorder.statements
    assert len(statements) > 20, statements  # the recorder saw the storage at work
    problems = []
    for sql in sorted(statements):
        if MARK in sql or "DROP" in sql or any(i in sql for i in ids):
            problems.append(f"a value in SQL text: {sql!r}")
        literals = set(re.findall(r"'([^']*)'", sql))
        if not literals <= {
            *("auto", "command", "context_menu", "positive", "negative", "neutral"),
            *("unread", "empty", "unknown", "language:_%"),  # constants of bot/storage/
        }:
            problems.append(f"string literals {literals} in {sql!r}")
        numbers = {int(n) for n in re.findall(r"\d{6,}", sql)}
        if not numbers <= {storage_module.APPLICATION_ID}:
            problems.append(f"numbers {numbers} in {sql!r}")
        if sql.startswith("UPDATE guild_settings SET"):
            assigned = re.fullmatch(r"UPDATE guild_settings SET (.+) WHERE guild_id = \?", sql)
            columns = assigned[1].split(", ") if assigned else ["?"]
            if (
                not all(re.fullmatch(r"(\w+) = \?", c) for c in columns)
                or not {c.split(" = ")[0] for c in columns} <= _COLUMN_NAMES
            ):
                problems.append(f"unexpected UPDATE: {sql!r}")
    assert problems == []
