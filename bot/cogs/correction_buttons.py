"""The correction buttons, persistent-safe: each is a :class:`discord.ui.DynamicItem` whose custom
id carries all a press needs (the mood, the asker and the time their prediction was logged; or
the mood and the message), so a press works after a restart as well as before. A press is
handed to the corrections cog (bot/cogs/corrections.py). Not an extension: the answers of
bot/cogs/sentiment.py build these buttons too, and one class per button must exist.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, cast

import discord

from bot.render import MOOD_EMOJI
from bot.storage import MOODS, Mood

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MOOD: Final = "(?P<mood>positive|neutral|negative)"
MEANT_TEMPLATE: Final = rf"sentiment:meant:{_MOOD}:(?P<asker>[0-9]{{1,20}}):(?P<at>[0-9]{{1,20}})"
FIX_TEMPLATE: Final = rf"sentiment:fix:{_MOOD}:(?P<message>[0-9]{{1,20}})"


def to_micros(when: datetime) -> int:
    """A logged time as whole microseconds since the epoch (exact: what a custom id carries)."""
    return (when - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class MeantButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=MEANT_TEMPLATE):
    """ "I meant <mood>" under an answer: ``sentiment:meant:<mood>:<asker id>:<time>``."""

    def __init__(self, mood: Mood, asker_id: int, asked_at: datetime) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"I meant {mood}",
                emoji=MOOD_EMOJI[mood],
                style=discord.ButtonStyle.secondary,
                custom_id=f"sentiment:meant:{mood}:{asker_id}:{to_micros(asked_at)}",
            )
        )
        self.mood: Mood = mood
        self.asker_id = asker_id
        self.asked_at = asked_at

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> MeantButton:
        return cls(_mood(match["mood"]), int(match["asker"]), from_micros(int(match["at"])))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _cog(interaction).meant_pressed(interaction, self)


class FixButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=FIX_TEMPLATE):
    """A moderator's choice of mood for a message: ``sentiment:fix:<mood>:<message id>``."""

    def __init__(self, mood: Mood, message_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=mood,
                emoji=MOOD_EMOJI[mood],
                style=discord.ButtonStyle.secondary,
                custom_id=f"sentiment:fix:{mood}:{message_id}",
            )
        )
        self.mood: Mood = mood
        self.message_id = message_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FixButton:
        return cls(_mood(match["mood"]), int(match["message"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _cog(interaction).fix_pressed(interaction, self)


def _mood(value: str) -> Mood:
    mood = next(m for m in MOODS if m == value)  # the template only matches the three moods
    return mood


class Handler(Protocol):
    """What answers a press: the corrections cog (bot/cogs/corrections.py)."""

    async def meant_pressed(
        self, interaction: discord.Interaction[Any], button: MeantButton
    ) -> None: ...

    async def fix_pressed(
        self, interaction: discord.Interaction[Any], button: FixButton
    ) -> None: ...


HANDLER: Final = "CorrectionsCog"  # the cog that answers presses, by name


def _cog(interaction: discord.Interaction[Any]) -> Handler:
    cog = interaction.client.get_cog(HANDLER)
    if cog is None:
        raise RuntimeError(f"the {HANDLER} cog is not loaded: nothing answers this button")
    return cast(Handler, cog)


def meant_view(asker_id: int, asked_at: datetime) -> discord.ui.View:
    """The three "I meant ..." buttons for an answer to ``asker_id``, logged at ``asked_at``."""
    view = discord.ui.View(timeout=None)
    for mood in ("positive", "neutral", "negative"):
        view.add_item(MeantButton(mood, asker_id, asked_at))
    return view


def fix_view(message_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for mood in ("positive", "neutral", "negative"):
        view.add_item(FixButton(mood, message_id))
    return view
