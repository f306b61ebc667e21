"""Shared pieces of the end-to-end tests: the test guild, the :class:`World` helper and the
``classifier`` / ``world`` fixtures (the real SentimentBot against the fake Discord).

``tests/conftest.py`` loads this module as a plugin, so the fixtures are available to every
test module; the rest is imported where it is used (``from e2e_support import World``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.config import Secret, Settings
from bot.storage import ANY_GUILD, HistoryFilter, StoredPrediction
from bot.storage.dsn import Dsn
from fakediscord import FakeDiscord, Reply, running_client

if TYPE_CHECKING:  # imported when used: they load torch, which unit-test runs do not need
    from bot.client import SentimentBot
    from model import Prediction, SentimentClassifier

GUILD = 900_000_000_000_000_001
GENERAL, RANDOM = 900_000_000_000_000_101, 900_000_000_000_000_102
OWNER, MOD, ALICE, BOB, OTHER_BOT = (900_000_000_000_001_000 + i for i in range(5))
MOD_ROLE = 900_000_000_000_000_201
MANAGE_MESSAGES = 1 << 13
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

POSITIVE = "I absolutely love this, what a wonderful and happy day!"
NEGATIVE = "This is terrible, I hate it, worst experience ever."


@pytest.fixture(scope="module")
def classifier() -> SentimentClassifier:
    from model import SentimentClassifier

    return SentimentClassifier.load()


@dataclass
class World:
    fake: FakeDiscord
    bot: SentimentBot

    async def rows(self, **filters: object) -> list[StoredPrediction]:
        await self.bot.storage.flush()
        flt = HistoryFilter(guild_id=filters.pop("guild_id", ANY_GUILD), **filters)
        return await self.bot.storage.history(flt, limit=1000)

    async def slash(
        self,
        name: str,
        options: dict[str, object] | None = None,
        *,
        user: int = ALICE,
        channel: int = GENERAL,
        subcommand: str | None = None,
    ) -> Reply:
        interaction = await self.fake.invoke_slash(
            name,
            options or {},
            user_id=user,
            channel_id=channel,
            guild_id=GUILD,
            subcommand=subcommand,
        )
        return await interaction.wait_for_reply(timeout=15)

    async def settle(self) -> None:
        """Wait until the bot has stopped talking to the fake, and its writer is flushed."""
        await self.fake.wait_idle(idle=0.3, timeout=15)
        await self.bot.storage.flush()


@contextlib.asynccontextmanager
async def open_world(
    tmp_path: Path,
    classifier: SentimentClassifier,
    *,
    token: str | None = None,
    database: Path | Dsn | None = None,
    **settings_options: Any,
) -> AsyncIterator[World]:
    """The test guild, the bot running against the fake, reactions on in #general.

    ``database``: the bot's database (default: a SQLite file in ``tmp_path``).

    ``token``: the fake accepts only this bot token (and the bot is given it); by default the
    fake accepts any token. ``settings_options``: more of the bot's settings (e.g.
    ``alert_check_s``).
    """
    from bot.app import create_bot

    async with FakeDiscord(bot_name="Sentiment Bot", token=token) as fake:
        guild = fake.add_guild(GUILD, "Test Guild", owner_id=OWNER)
        guild.add_channel(GENERAL, "general")
        guild.add_channel(RANDOM, "random")
        guild.add_role(MOD_ROLE, "mods", MANAGE_MESSAGES)
        guild.add_member(OWNER, "owner")
        guild.add_member(MOD, "mod", roles=[MOD_ROLE])
        guild.add_member(ALICE, "alice")
        guild.add_member(BOB, "bob")
        guild.add_member(OTHER_BOT, "otherbot", bot=True)
        settings = Settings(
            token=Secret(fake.token or ""),
            database=tmp_path / "bot.db" if database is None else database,
            dev_guild_id=GUILD,
            **settings_options,
        )
        bot = await create_bot(settings, classifier=classifier, guild_ready_timeout=0.1)
        async with running_client(bot, fake):
            world = World(fake, bot)
            reply = await world.slash(
                "sentiment-admin",
                {"channel": GENERAL, "enabled": True},
                user=OWNER,
                subcommand="reactions",
            )
            assert "Automatic reactions are on" in reply.text
            yield world


@pytest.fixture
async def world(tmp_path: Path, classifier: SentimentClassifier) -> AsyncIterator[World]:
    async with open_world(tmp_path, classifier) as world:
        yield world


@pytest.fixture
async def any_world(
    tmp_path: Path, database: Path | Dsn, classifier: SentimentClassifier
) -> AsyncIterator[World]:
    """``world`` on each database engine (tests/engines.py): SQLite and PostgreSQL."""
    async with open_world(tmp_path, classifier, database=database) as world:
        yield world


def buttons(reply: Reply) -> dict[str, dict[str, Any]]:
    """The reply's buttons by label."""
    found = {}
    for row in reply.components:
        for component in row.get("components", []):
            if component.get("type") == 2:
                found[component["label"]] = component
    return found


class SlowClassifier:
    """The real classifier, ``delay`` seconds slower per batch (in the model's thread, like the
    real model). A wrapper, so that importing this module does not load torch."""

    def __init__(self, base: SentimentClassifier, delay: float) -> None:
        self._base = base
        self.delay = delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def predict_batch(
        self, texts: Sequence[str], *, band: tuple[float, float] | None = None
    ) -> list[Prediction]:
        time.sleep(self.delay)
        return self._base.predict_batch(texts, band=band)


async def react_to(world: World, text: str, *, user: int = ALICE) -> int:
    """Post ``text`` in #general and wait until the bot reacted to it."""
    message_id = await world.fake.send_message(GENERAL, user, text)
    await world.fake.wait_for(
        lambda: bool(world.fake.active_reactions(message_id)),
        description=f"a reaction to message {message_id}",
    )
    return message_id
