"""The bot's rules, as plain functions on plain values: which messages it reacts to, with which
emoji, under which band, whose text it keeps, and who may correct a mood (and what becomes of
the reaction then).

No I/O and no discord objects: the cogs translate a Discord event into these values, and
:class:`bot.mood.MoodService` reads the facts (the guild's settings, the opt-outs) and applies
the rules. Whether a prediction is confident enough to be voiced is the model's rule
(``model.Prediction.mood``, under the band chosen here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.storage import GuildSettings, Mood, Source
from model import Prediction

Band = tuple[float, float]

# Why a message gets no automatic reaction before it is classified.
Skip = Literal[
    "shutting down",  # the bot is closing: it finishes what it has, and takes nothing new
    "direct message",  # reactions are a guild setting
    "bot author",  # other bots and the bot itself: no loops, no reading machine output
    "webhook",  # integrations and relays speak for no member
    "nothing to read",  # an attachment, an embed or a sticker alone
    "reactions off",  # not switched on in this channel (a thread follows its channel)
    "opted out",  # the author used /forget-me
]


@dataclass(frozen=True)
class ChatMessage:
    """A guild or direct message, as the rules see it."""

    id: int
    guild_id: int | None  # None: a direct message
    channel_id: int
    parent_id: int | None  # a thread's channel; None for a channel
    author_id: int
    author_is_bot: bool
    webhook: bool  # sent by a webhook
    content: str


def skip_message(message: ChatMessage, *, closing: bool) -> Skip | None:
    """Why ``message`` gets no automatic reaction whatever the guild's settings, or None.

    Needs nothing but the message: the bot asks this first, before it reads any setting."""
    if closing:
        return "shutting down"
    if message.guild_id is None:
        return "direct message"
    if message.author_is_bot:
        return "bot author"
    if message.webhook:
        return "webhook"
    if not message.content.strip():
        return "nothing to read"
    return None


def skip_in_channel(
    message: ChatMessage, settings: GuildSettings, *, opted_out: bool, watched: bool = False
) -> Skip | None:
    """Why ``message`` is not read under its guild's ``settings``, or None.

    ``opted_out``: whether its author opted out. ``watched``: mood alerts watch its channel,
    so it is read (and logged) even where reactions are off; whether it gets a reaction is
    :func:`reacts_in`'s."""
    if not watched and not reacts_in(settings, message.channel_id, message.parent_id):
        return "reactions off"
    if opted_out:
        return "opted out"
    return None


def reacts_in(settings: GuildSettings, channel_id: int, parent_id: int | None = None) -> bool:
    """Whether automatic reactions are on in the channel (a thread: in its parent channel)."""
    return channel_id in settings.auto_channels or (
        parent_id is not None and parent_id in settings.auto_channels
    )


class ReplayGuard:
    """The messages being handled now. After a RESUME, Discord can deliver a message again
    while the first delivery is still being classified: the second is skipped. (Once its
    prediction is stored, storage answers that it was already handled.)"""

    def __init__(self) -> None:
        self._active: set[int] = set()

    def claim(self, message_id: int) -> bool:
        """Take ``message_id``; False when it is already being handled."""
        if message_id in self._active:
            return False
        self._active.add(message_id)
        return True

    def release(self, message_id: int) -> None:
        """Done with ``message_id`` (handled, skipped or failed)."""
        self._active.discard(message_id)


def reaction_emoji(prediction: Prediction, settings: GuildSettings) -> str | None:
    """The emoji to react with, or None: silent on a text the model did not read, and on a
    neutral one (which includes a polar one it is not confident enough of)."""
    if not prediction.read:
        return None
    return mood_emoji(prediction.mood, settings)


def mood_emoji(mood: Mood, settings: GuildSettings) -> str | None:
    """The guild's reaction for a mood; None for neutral (no reaction)."""
    if mood == "neutral":
        return None
    return settings.positive_emoji if mood == "positive" else settings.negative_emoji


def guild_band(settings: GuildSettings | None, model_band: Band) -> Band:
    """The band the guild chose (``/sentiment-admin band``), else the model's. ``settings``
    None: no guild (a direct message), or its settings could not be read."""
    if settings is not None and settings.band is not None:
        return settings.band
    return model_band


def keeps_text(source: Source, settings: GuildSettings | None) -> bool:
    """Whether a prediction's text is stored: text typed into /sentiment always; a member's
    message (an automatic reaction, the context menu) only where the guild switched it on."""
    return source == "command" or (settings is not None and settings.store_auto_text)


# -- corrections -------------------------------------------------------------------------------

NOT_YOUR_ANSWER = (
    "Only the person who asked can say what they meant. Ask yourself with /sentiment or the "
    '"Analyze sentiment" menu.'
)
NOT_A_MODERATOR = (
    "Only members with the Manage Messages permission in this channel can correct the bot's "
    'reactions. Use "Analyze sentiment" to see what the bot reads.'
)


def answer_correction_refusal(presser_id: int, asker_id: int) -> str | None:
    """Why ``presser_id`` may not press "that's what I meant" under the answer given to
    ``asker_id``, or None: only the person who asked says what they meant."""
    return None if presser_id == asker_id else NOT_YOUR_ANSWER


def reaction_correction_refusal(manage_messages: bool) -> str | None:
    """Why someone may not correct an automatic reaction, or None: it takes Manage Messages
    (in the message's channel), the permission to remove others' reactions."""
    return None if manage_messages else NOT_A_MODERATOR


def shown_mood(model_mood: Mood, corrected: Mood | None) -> Mood:
    """The mood a message's reaction shows now: the latest correction's, else the model's."""
    return corrected if corrected is not None else model_mood


def reaction_change(
    shown: Mood, meant: Mood, settings: GuildSettings
) -> tuple[str | None, str | None]:
    """What a correction does to the bot's reaction: (emoji to remove, emoji to add), each None
    when there is nothing to do; (None, None) when the reaction stays as it is (the same mood,
    or two moods shown alike)."""
    old, new = mood_emoji(shown, settings), mood_emoji(meant, settings)
    if old == new:
        return None, None
    return old, new


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a guild's events to: ``(guild_id >> 22) % shard_count``."""
    return (guild_id >> 22) % shard_count


def serves(guild_id: int, shard_count: int | None, shards: tuple[int, ...]) -> bool:
    """Whether a process running ``shards`` of ``shard_count`` answers for the guild: its
    messages, alerts, departures (None: not sharded, one process answers for every guild)."""
    return shard_count is None or shard_of(guild_id, shard_count) in shards
