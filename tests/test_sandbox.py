"""sentiment-sandbox: the console parser (pure) and one scripted session against the real bot."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.cli import main
from bot.sandbox.database import create_sandbox_database, is_sandbox_database, remove_database
from bot.sandbox.display import plain
from bot.sandbox.parsing import Meta, Say, Slash, build_call, parse_line
from bot.sandbox.world import UsageError, World
from bot.storage import Storage
from fakediscord import DEFAULT_TOKEN

REPO = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

WORLD = World(
    guild_id=1,
    members={"you": 10, "alice": 11},
    channels={"general": 100, "random": 101},
    others={99: "Sentiment Bot"},
)
CHANNEL: dict[str, Any] = {"type": 7, "name": "channel", "description": "The channel"}
SENTIMENT = {
    "name": "sentiment",
    "options": [
        {"type": 3, "name": "text", "required": True, "min_length": 1},
        {"type": 5, "name": "private"},
    ],
}
HISTORY = {
    "name": "history",
    "options": [
        {"type": 6, "name": "member"},
        CHANNEL,
        {
            "type": 3,
            "name": "mood",
            "choices": [{"name": m, "value": m} for m in ("positive", "negative")],
        },
        {"type": 4, "name": "days", "min_value": 1, "max_value": 3650},
    ],
}
ADMIN = {
    "name": "sentiment-admin",
    "options": [
        {"type": 1, "name": "show", "options": []},
        {
            "type": 1,
            "name": "reactions",
            "options": [
                {**CHANNEL, "required": True},
                {"type": 5, "name": "enabled", "required": True},
            ],
        },
        {
            "type": 1,
            "name": "emoji",
            "options": [{"type": 3, "name": "positive"}, {"type": 3, "name": "negative"}],
        },
    ],
}


def call(command: dict[str, Any], line: str) -> tuple[str | None, dict[str, Any]]:
    parsed = parse_line(line)
    assert isinstance(parsed, Slash)
    return build_call(command, parsed, WORLD)


# ------------------------------------------------------------------------------ parser


def test_parse_line_tells_messages_commands_and_console_commands_apart() -> None:
    assert parse_line("  ") is None
    assert parse_line("I love it") == Say("I love it")
    assert parse_line('/history member=alice mood=negative note="a b" 7') == Slash(
        "history", ("7",), (("member", "alice"), ("mood", "negative"), ("note", "a b"))
    )
    assert parse_line("/sentiment 2+2=4 is great") == Slash("sentiment", ("2+2=4", "is", "great"))
    assert parse_line(":) what a day") == Say(":) what a day")
    assert parse_line(":as alice") == Meta("as", "alice")
    assert parse_line(":QUIT") == Meta("quit")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (":frobnicate", "unknown console command :frobnicate"),
        (":as", ":as needs a member name"),
        ("/", "type a command name after /"),
        ("/history days=1 days=2", "option days= is given twice"),
    ],
)
def test_parse_line_names_the_mistake(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_line(line)


def test_words_fill_the_options_they_fit() -> None:
    assert call(SENTIMENT, "/sentiment private this is awful") == (
        None,
        {"private": True, "text": "this is awful"},
    )
    assert call(SENTIMENT, "/sentiment text=hi private=no") == (
        None,
        {"text": "hi", "private": False},
    )
    assert call(HISTORY, "/history negative #random alice 7") == (
        None,
        {"mood": "negative", "channel": 101, "member": 11, "days": 7},
    )
    assert call(ADMIN, "/sentiment-admin reactions #random off") == (
        "reactions",
        {"channel": 101, "enabled": False},
    )
    # two free-text options: one word each
    assert call(ADMIN, "/sentiment-admin emoji 🎉 😡") == (
        "emoji",
        {"positive": "🎉", "negative": "😡"},
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/history days=abc", "days=abc: days takes a whole number"),
        ("/history member=bob", "no member named 'bob'; the members are: you, alice"),
        ("/history bob", "'bob' fits none of its options"),
        ("/history colour=red", "/history has no option 'colour'; it takes: member"),
        ("/sentiment-admin", "needs a subcommand: show | reactions | emoji"),
        ("/sentiment-admin frob", "has no subcommand 'frob'"),
        ("/sentiment-admin reactions #random", "needs enabled"),
        ("/sentiment-admin show now", "takes nothing more; left over: 'now'"),
        ("/sentiment private", "needs text"),
    ],
)
def test_bad_command_lines_get_a_clear_error(line: str, message: str) -> None:
    command = {"history": HISTORY, "sentiment-admin": ADMIN, "sentiment": SENTIMENT}
    parsed = parse_line(line)
    assert isinstance(parsed, Slash)
    with pytest.raises(UsageError, match=message):
        build_call(command[parsed.name], parsed, WORLD)


def test_plain_makes_discord_markup_readable() -> None:
    text = "😊 **positive** 0.97 · <#100> · <t:1000:R> · <@11> · <@99>\n`███░ 30%` \\*x\\_"
    assert plain(text, WORLD, now=1000 + 120) == (
        "😊 positive 0.97 · #general · 2 min ago · @alice · @Sentiment Bot\n███░ 30% *x_"
    )


# ------------------------------------------------------------------------------ a real session

SCRIPT = """\
I absolutely love this, what a wonderful day!
/sentiment this is terrible and I hate it
:analyze 1
/history
/mood
:in random
what a wonderful day
:as alice
/sentiment-admin show
/nope
:as bob
:delete 1
:quit
"""


def test_a_scripted_session_reacts_answers_and_saves_the_chart(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SENTIMENT_ARTIFACT", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.sandbox.cli",
            "--db",
            str(tmp_path / "sandbox.db"),
            "--fresh",
            "--out",
            str(out),
            "--log",
            str(tmp_path / "sandbox.log"),
        ],
        input=SCRIPT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "Traceback" not in output + result.stderr
    assert "#1 · bot reacted 👍" in output
    assert "😞 Negative" in output  # /sentiment
    assert "😊 Positive" in output  # the context menu on message #1
    assert "Your sentiment history" in output
    assert "reaction" in output.split("Your sentiment history")[1]
    assert "#2 · no reaction: automatic reactions are off in #random" in output
    assert "error: alice cannot use /sentiment-admin: it needs Manage Server" in output
    assert "error: unknown command /nope" in output
    assert "error: no member named 'bob'" in output
    assert "#1 deleted; the bot erased its stored prediction of it" in output
    assert "! the bot logged an error" not in output
    (chart,) = out.glob("mood-*.png")
    assert chart.read_bytes().startswith(PNG_MAGIC)
    assert f"[file saved: {chart}]" in output
    log = (tmp_path / "sandbox.log").read_text(encoding="utf-8")
    assert "shut down cleanly" in log  # SentimentBot.close ran: the database was flushed
    assert DEFAULT_TOKEN not in log + output + result.stderr  # the token is never shown
    assert (tmp_path / "sandbox.db").is_file()
    assert is_sandbox_database(tmp_path / "sandbox.db")  # so a later --fresh may delete it


CORRECTION_SCRIPT = """\
this is terrible and I hate it
:correct 1
:click positive
/sentiment that boss fight was sick
:click positive
:as alice
:correct 1
:quit
"""


def test_a_session_shows_corrections(tmp_path: Path) -> None:
    """A moderator's "Correct sentiment" replaces the reaction; "I meant ..." under an answer
    is stored; a member without Manage Messages does not get the menu."""
    output = run_sandbox(tmp_path, CORRECTION_SCRIPT)
    assert "#1 · bot reacted 👎" in output
    assert "The bot read this message as negative and reacted 👎" in output
    assert "[buttons: positive · neutral · negative]" in output
    assert "Reaction changed: 👎 → 👍" in output
    assert "I meant positive" in output  # the buttons under the /sentiment answer
    assert "Thanks: noted that" in output
    assert "error: alice cannot use 'Correct sentiment': it needs Manage Messages" in output
    assert "! the bot logged an error" not in output


def run_sandbox(tmp_path: Path, script: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SENTIMENT_ARTIFACT", None)
    result = subprocess.run(
        [sys.executable, "-m", "bot.sandbox.cli", "--db", str(tmp_path / "sandbox.db"),
         "--fresh", "--out", str(tmp_path / "out"), "--log", str(tmp_path / "sandbox.log")],
        input=script,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


# ------------------------------------------------------------------------------ --fresh


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no .env and no SENTIMENT_DB in the environment."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("SENTIMENT_DB", raising=False)
    return work


def make_db(path: Path, *, sandbox: bool) -> Path:
    """A database as the bot creates it; marked as the sandbox's when ``sandbox``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if sandbox:
        asyncio.run(create_sandbox_database(path))
    else:
        asyncio.run(_open_and_close(path))
    return path


async def _open_and_close(path: Path) -> None:
    storage = await Storage.open(path)
    await storage.close()


def test_fresh_deletes_a_database_the_sandbox_created(elsewhere: Path) -> None:
    db = make_db(elsewhere / "data" / "sandbox.db", sandbox=True)
    wal = db.with_name("sandbox.db-wal")
    wal.write_bytes(b"")
    assert is_sandbox_database(db)
    assert remove_database(Path("data/sandbox.db"))
    assert list((elsewhere / "data").iterdir()) == []  # the database and its -wal
    assert not remove_database(Path("data/sandbox.db"))  # nothing there: nothing to do


@pytest.mark.parametrize("where", ["environment", "dotenv", "dotenv-relative"])
def test_fresh_never_deletes_the_database_the_settings_name(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # Even a sandbox-made file (e.g. copied into production) is refused once settings name it.
    real = make_db(elsewhere / "prod" / "real.db", sandbox=True)
    if where == "environment":
        monkeypatch.setenv("SENTIMENT_DB", str(real))
        source = "SENTIMENT_DB in the environment"
    elif where == "dotenv":
        (elsewhere / ".env").write_text(f"DISCORD_TOKEN=x\nSENTIMENT_DB={real}\n")
        source = f"SENTIMENT_DB in {elsewhere / '.env'}"
    else:
        (elsewhere / "prod" / ".env").write_text("SENTIMENT_DB=real.db\n")
        monkeypatch.chdir(elsewhere / "prod")
        source = f"SENTIMENT_DB in {elsewhere / 'prod' / '.env'}"
    before = real.read_bytes()
    with pytest.raises(UsageError, match="it is the bot's database") as refused:
        remove_database(real)
    assert source in str(refused.value)
    link = elsewhere / "link.db"  # the same file under another name
    os.link(real, link)
    with pytest.raises(UsageError, match="it is the bot's database"):
        remove_database(link)
    assert real.read_bytes() == before


def test_fresh_never_deletes_the_default_database(elsewhere: Path) -> None:
    db = make_db(elsewhere / "data" / "sentiment.db", sandbox=True)
    with pytest.raises(UsageError, match=r"the default data/sentiment\.db"):
        remove_database(Path("data/sentiment.db"))
    assert db.is_file()


@pytest.mark.parametrize("kind", ["bot database", "copied in place", "not sqlite", "folder"])
def test_fresh_never_deletes_a_file_the_sandbox_did_not_create(elsewhere: Path, kind: str) -> None:
    db = elsewhere / "data" / "sandbox.db"
    if kind == "bot database":
        make_db(db, sandbox=False)
    elif kind == "copied in place":  # a production copy where the sandbox's file was
        make_db(db, sandbox=True)
        other = make_db(elsewhere / "other.db", sandbox=False)
        db.unlink()
        shutil.copy(other, db)
    elif kind == "not sqlite":
        db.parent.mkdir()
        db.write_text("my notes")
    else:
        (db / "inside").mkdir(parents=True)
    before = sorted(db.iterdir()) if db.is_dir() else db.read_bytes()
    with pytest.raises(UsageError, match="the sandbox did not create it"):
        remove_database(db)
    assert (sorted(db.iterdir()) if db.is_dir() else db.read_bytes()) == before


def test_sandbox_fresh_on_the_real_database_exits_with_an_error(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reported case: `sentiment-sandbox --db real.db --fresh`, SENTIMENT_DB only in .env."""
    real = make_db(elsewhere / "real.db", sandbox=False)
    (elsewhere / ".env").write_text("SENTIMENT_DB=real.db\n")
    before = real.read_bytes()
    assert main(["--db", "real.db", "--fresh", "--log", str(elsewhere / "log")]) == 2
    assert "error: --fresh refuses to delete real.db: it is the bot's database" in (
        capsys.readouterr().err
    )
    assert real.read_bytes() == before


def test_without_the_fake_discord_the_sandbox_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    import bot.sandbox

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "fakediscord" else real_find_spec(name, *a),
    )
    assert bot.sandbox.main(["--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "fake-discord" in err and "pip install -e ./fakediscord" in err


# ------------------------------------------------------------------------------ mood alerts

ALERT_SCRIPT = """\
/sentiment-admin alerts channel #random
/sentiment-admin alerts watch #general 50 minimum=3
This is terrible, I hate it, worst experience ever.
I hate this so much, it is awful and disgusting.
Worst day ever, everything is horrible and I am furious.
/sentiment-admin alerts show
:quit
"""


def test_the_sandbox_shows_a_mood_alert_where_the_bot_posts_it(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SENTIMENT_ARTIFACT", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.sandbox.cli",
            "--db",
            str(tmp_path / "sandbox.db"),
            "--log",
            str(tmp_path / "sandbox.log"),
        ],
        input=ALERT_SCRIPT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "Watched channels: #general: alert at 50% negative over 10 minutes" in output
    before, alert = output.split("bot posted in #random:")
    assert "#3 · bot reacted 👎" in before  # the alert comes after the third message
    assert "⚠️ Mood alert" in alert
    assert "#general is turning sour: 100% negative (3 of 3 messages" in alert
    assert alert.count("(https://discord.com/channels/") == 3  # jump links, no text kept
    assert "alerting since" in alert  # /sentiment-admin alerts show
    assert "! the bot logged an error" not in output
