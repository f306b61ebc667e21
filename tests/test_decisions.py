"""bot.decisions: which messages the bot reacts to, with which emoji, under which band, and whose
text it keeps. Plain values in, plain values out: no bot, no sockets, no model."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.decisions import (
    ChatMessage,
    ReplayGuard,
    guild_band,
    keeps_text,
    reaction_emoji,
    reacts_in,
    skip_in_channel,
    skip_message,
)
from bot.storage import DEFAULT_NEGATIVE_EMOJI, DEFAULT_POSITIVE_EMOJI, GuildSettings, Source
from model import MOODS, Prediction

GUILD, CHANNEL, OTHER_CHANNEL, THREAD, AUTHOR = 10, 20, 21, 30, 40
MESSAGE = ChatMessage(
    id=50,
    guild_id=GUILD,
    channel_id=CHANNEL,
    parent_id=None,
    author_id=AUTHOR,
    author_is_bot=False,
    webhook=False,
    content="what a lovely day",
)
ON = GuildSettings(GUILD, auto_channels=frozenset({CHANNEL}))
OFF = GuildSettings(GUILD)
PARTY = GuildSettings(GUILD, positive_emoji="🎉", negative_emoji="<:sad:123456789012345678>")
MODEL_BAND = (0.4, 0.6)


def binary(p_positive: float) -> Prediction:
    """A binary model's prediction, before any band is applied."""
    label = "positive" if p_positive >= 0.5 else "negative"
    return Prediction(label, p_positive, in_band=False)


def three_way(negative: float, neutral: float, positive: float) -> Prediction:
    """A three-way model's prediction (label: the most probable), before any band is applied."""
    probabilities = (negative, neutral, positive)
    label = MOODS[probabilities.index(max(probabilities))]
    return Prediction(label, positive / (positive + negative), False, probabilities=probabilities)


def reaction(
    prediction: Prediction,
    settings: GuildSettings = ON,
    model_band: tuple[float, float] = MODEL_BAND,
) -> str | None:
    """The emoji as the bot chooses it: the prediction judged under the guild's band."""
    return reaction_emoji(prediction.with_band(guild_band(settings, model_band)), settings)


# --------------------------------------------------------------------------------------------
# Whether a message is considered at all


def test_a_members_message_in_a_guild_is_considered() -> None:
    assert skip_message(MESSAGE, closing=False) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"guild_id": None}, "direct message"),
        ({"author_is_bot": True}, "bot author"),  # another bot, or the bot itself
        ({"webhook": True}, "webhook"),
        ({"content": ""}, "nothing to read"),  # an attachment or a sticker alone
        ({"content": " \n\t "}, "nothing to read"),
    ],
)
def test_messages_the_bot_never_reacts_to(change: dict[str, object], reason: str) -> None:
    assert skip_message(replace(MESSAGE, **change), closing=False) == reason


def test_no_new_work_while_shutting_down() -> None:
    assert skip_message(MESSAGE, closing=True) == "shutting down"


def test_the_first_rule_that_applies_is_the_reason() -> None:
    bot_in_dm = replace(MESSAGE, guild_id=None, author_is_bot=True, content="")
    assert skip_message(bot_in_dm, closing=False) == "direct message"


# --------------------------------------------------------------------------------------------
# Where: the guild's channels, the author's opt-out


def test_reacts_in_a_channel_where_reactions_are_on() -> None:
    assert skip_in_channel(MESSAGE, ON, opted_out=False) is None


def test_silent_in_a_channel_where_reactions_are_off() -> None:
    assert skip_in_channel(MESSAGE, OFF, opted_out=False) == "reactions off"
    elsewhere = GuildSettings(GUILD, auto_channels=frozenset({OTHER_CHANNEL}))
    assert skip_in_channel(MESSAGE, elsewhere, opted_out=False) == "reactions off"


def test_a_thread_follows_its_channel() -> None:
    in_thread = replace(MESSAGE, channel_id=THREAD, parent_id=CHANNEL)
    assert skip_in_channel(in_thread, ON, opted_out=False) is None
    assert skip_in_channel(in_thread, OFF, opted_out=False) == "reactions off"
    assert reacts_in(ON, THREAD, CHANNEL) and not reacts_in(ON, THREAD)


def test_silent_for_an_author_who_opted_out() -> None:
    assert skip_in_channel(MESSAGE, ON, opted_out=True) == "opted out"
    assert skip_in_channel(MESSAGE, OFF, opted_out=True) == "reactions off"


# --------------------------------------------------------------------------------------------
# A message delivered again


def test_a_message_delivered_again_while_in_progress_is_skipped() -> None:
    guard = ReplayGuard()
    assert guard.claim(MESSAGE.id)
    assert not guard.claim(MESSAGE.id)  # the replay, while the first is being classified
    assert guard.claim(MESSAGE.id + 1)  # another message is not held up
    guard.release(MESSAGE.id)
    assert guard.claim(MESSAGE.id)  # released: storage's duplicate check takes over
    guard.release(MESSAGE.id + 1)
    guard.release(MESSAGE.id + 1)  # releasing twice is harmless


# --------------------------------------------------------------------------------------------
# With what: the model's answer, the band, the emoji


def test_emoji_follow_the_mood_and_the_guilds_choice() -> None:
    assert reaction(binary(0.95), OFF) == DEFAULT_POSITIVE_EMOJI
    assert reaction(binary(0.05), OFF) == DEFAULT_NEGATIVE_EMOJI
    assert reaction(binary(0.95), PARTY) == "🎉"
    assert reaction(binary(0.05), PARTY) == "<:sad:123456789012345678>"
    assert reaction(three_way(0.05, 0.05, 0.9), PARTY) == "🎉"
    assert reaction(three_way(0.9, 0.05, 0.05), PARTY) == "<:sad:123456789012345678>"


@pytest.mark.parametrize("unread", ["empty", "unknown", "language:fr"])
def test_silent_on_a_text_the_model_did_not_read(unread: str) -> None:
    prediction = Prediction("neutral", 0.5, True, unread=unread)
    assert reaction(prediction) is None
    # even if a (broken) predictor claimed a mood for it
    assert reaction_emoji(Prediction("positive", 0.99, False, unread=unread), ON) is None


@pytest.mark.parametrize(
    ("p_positive", "emoji"),
    [
        (0.0, DEFAULT_NEGATIVE_EMOJI),
        (0.3, DEFAULT_NEGATIVE_EMOJI),  # on the band's edge: voiced
        (0.31, None),
        (0.5, None),
        (0.69, None),
        (0.7, DEFAULT_POSITIVE_EMOJI),  # on the band's edge: voiced
        (1.0, DEFAULT_POSITIVE_EMOJI),
    ],
)
def test_a_binary_model_is_silent_inside_the_neutral_band(
    p_positive: float, emoji: str | None
) -> None:
    band = replace(ON, band=(0.3, 0.7))
    assert reaction(binary(p_positive), band) == emoji


@pytest.mark.parametrize(
    ("probabilities", "emoji"),
    [
        ((0.1, 0.1, 0.8), DEFAULT_POSITIVE_EMOJI),  # P(positive) at high: voiced
        ((0.1, 0.11, 0.79), None),  # leans positive, below high
        ((0.6, 0.2, 0.2), DEFAULT_NEGATIVE_EMOJI),  # P(negative) at 1 - low: voiced
        ((0.59, 0.21, 0.2), None),  # leans negative, below 1 - low
        ((0.2, 0.6, 0.2), None),  # neutral: never a reaction
        ((0.05, 0.9, 0.05), None),
    ],
)
def test_a_three_way_model_reacts_from_each_moods_threshold(
    probabilities: tuple[float, float, float], emoji: str | None
) -> None:
    thresholds = replace(ON, band=(0.4, 0.8))  # 👍 at P(positive) >= 0.8, 👎 at P(negative) >= 0.6
    assert reaction(three_way(*probabilities), thresholds) == emoji


def test_the_guilds_band_overrides_the_models() -> None:
    p = binary(0.65)
    assert reaction(p, ON, model_band=(0.4, 0.6)) == DEFAULT_POSITIVE_EMOJI
    assert reaction(p, replace(ON, band=(0.3, 0.7)), model_band=(0.4, 0.6)) is None
    leaning = three_way(0.1, 0.2, 0.7)
    assert reaction(leaning, ON, model_band=(0.4, 0.8)) is None
    assert (
        reaction(leaning, replace(ON, band=(0.4, 0.7)), model_band=(0.4, 0.8))
        == DEFAULT_POSITIVE_EMOJI
    )


def test_the_band_falls_back_to_the_models() -> None:
    assert guild_band(None, MODEL_BAND) == MODEL_BAND  # a direct message, or unreadable settings
    assert guild_band(OFF, MODEL_BAND) == MODEL_BAND  # never changed
    assert guild_band(replace(OFF, band=(0.2, 0.9)), MODEL_BAND) == (0.2, 0.9)


# --------------------------------------------------------------------------------------------
# Whose text is kept


@pytest.mark.parametrize(
    ("source", "settings", "kept"),
    [
        ("command", None, True),  # typed into /sentiment by the person asking
        ("command", OFF, True),
        ("auto", OFF, False),  # a member's message: only where the guild switched it on
        ("auto", replace(ON, store_auto_text=True), True),
        ("context_menu", OFF, False),
        ("context_menu", replace(OFF, store_auto_text=True), True),
        ("context_menu", None, False),  # in a direct message: never
    ],
)
def test_text_is_kept_for_commands_and_where_the_guild_allows_it(
    source: Source, settings: GuildSettings | None, kept: bool
) -> None:
    assert keeps_text(source, settings) is kept
