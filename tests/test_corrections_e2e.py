"""Corrections end to end, the real bot against the fake Discord: the "I meant ..." buttons
under an answer store a correction (only the asker may press them, and a press still works
after a restart), and a moderator's "Correct sentiment" replaces the bot's reaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import (
    ALICE,
    BOB,
    GENERAL,
    GUILD,
    MOD,
    NEGATIVE,
    POSITIVE,
    World,
    buttons,
    open_world,
    react_to,
)

from bot.storage import CorrectionFilter, StoredCorrection
from model import SentimentClassifier


async def corrections(world: World) -> list[StoredCorrection]:
    return await world.bot.storage.corrections(CorrectionFilter(), limit=100)


async def press(world: World, message_id: int, custom_id: str, user: int) -> str:
    interaction = await world.fake.click_button(
        message_id, custom_id, user_id=user, channel_id=GENERAL, guild_id=GUILD
    )
    reply = await interaction.wait_for_reply(timeout=15)
    assert reply.ephemeral, "a press is answered ephemerally"
    return reply.text


async def test_an_answer_button_stores_a_correction_only_for_the_asker(world: World) -> None:
    answer = await world.slash("sentiment", {"text": NEGATIVE})
    shown = buttons(answer)
    assert set(shown) == {"I meant positive", "I meant neutral", "I meant negative"}

    # Bob did not ask: refused, nothing stored
    text = await press(world, answer.message_id, shown["I meant positive"]["custom_id"], BOB)
    assert "Only the person who asked" in text
    assert await corrections(world) == []

    text = await press(world, answer.message_id, shown["I meant positive"]["custom_id"], ALICE)
    assert "you meant **positive**" in text and "the model read **negative**" in text
    (row,) = await corrections(world)
    assert (row.user_id, row.mood, row.model_mood, row.source) == (ALICE, "positive", "negative",
                                                                    "command")  # fmt: skip
    assert row.text == NEGATIVE  # typed into /sentiment: the author asked, the text is kept
    assert row.model_version == world.bot.classifier.version and row.guild_id == GUILD
    (prediction,) = await world.rows()
    assert row.prediction_id == prediction.id

    # Pressing another mood changes the correction rather than adding one
    await press(world, answer.message_id, shown["I meant neutral"]["custom_id"], ALICE)
    (row,) = await corrections(world)
    assert row.mood == "neutral"

    # /forget-me erases it with the predictions
    await world.slash("forget-me", user=ALICE)
    assert await corrections(world) == []


async def test_the_menu_answer_keeps_no_text_where_the_guild_stores_none(world: World) -> None:
    message_id = await world.fake.send_message(GENERAL, BOB, POSITIVE)
    await world.settle()
    interaction = await world.fake.invoke_message_command(
        "Analyze sentiment",
        target_message_id=message_id,
        user_id=ALICE,
        channel_id=GENERAL,
        guild_id=GUILD,
    )
    answer = await interaction.wait_for_reply(timeout=15)
    custom_id = buttons(answer)["I meant negative"]["custom_id"]
    text = await press(world, answer.message_id, custom_id, ALICE)
    assert "not the text" in text
    (row,) = await corrections(world)
    assert (row.source, row.message_id, row.author_id, row.text) == (
        "context_menu",
        message_id,
        BOB,
        None,
    )
    # the author's /forget-me erases a correction of their words too
    await world.slash("forget-me", user=BOB)
    assert await corrections(world) == []


async def test_a_moderators_correction_replaces_the_reaction(world: World) -> None:
    message_id = await react_to(world, NEGATIVE, user=BOB)
    assert world.fake.active_reactions(message_id) == ["👎"]

    # a member without Manage Messages does not see the menu (its default permissions)
    with pytest.raises(PermissionError):
        await world.fake.invoke_message_command(
            "Correct sentiment",
            target_message_id=message_id,
            user_id=ALICE,
            channel_id=GENERAL,
            guild_id=GUILD,
        )
    menu = await world.fake.invoke_message_command(
        "Correct sentiment",
        target_message_id=message_id,
        user_id=MOD,
        channel_id=GENERAL,
        guild_id=GUILD,
    )
    picker = await menu.wait_for_reply(timeout=15)
    assert picker.ephemeral and "read this message as **negative** and reacted 👎" in picker.text
    choices = buttons(picker)
    assert set(choices) == {"positive", "neutral", "negative"}

    text = await press(world, picker.message_id, choices["positive"]["custom_id"], MOD)
    assert "Reaction changed: 👎 → 👍" in text
    assert world.fake.active_reactions(message_id) == ["👍"]
    (row,) = await corrections(world)
    assert (row.user_id, row.author_id, row.source, row.mood, row.model_mood) == (
        MOD,
        BOB,
        "auto",
        "positive",
        "negative",
    )
    assert row.text is None  # the guild does not store message text

    # neutral: the reaction goes; the same mood again: it stays
    text = await press(world, picker.message_id, choices["neutral"]["custom_id"], MOD)
    assert "removed" in text and world.fake.active_reactions(message_id) == []
    text = await press(world, picker.message_id, choices["neutral"]["custom_id"], MOD)
    assert "stays" in text

    # Alice (no Manage Messages) pressing the moderator's buttons is refused
    text = await press(world, picker.message_id, choices["negative"]["custom_id"], ALICE)
    assert "Manage Messages" in text and world.fake.active_reactions(message_id) == []

    # deleting the message deletes its corrections
    await world.fake.delete_message(GENERAL, message_id)
    await world.settle()
    assert await corrections(world) == []


async def test_the_buttons_work_after_a_restart(
    tmp_path: Path, classifier: SentimentClassifier
) -> None:
    async with open_world(tmp_path, classifier) as world:
        answer = await world.slash("sentiment", {"text": POSITIVE})
        custom_id = buttons(answer)["I meant negative"]["custom_id"]
    async with open_world(tmp_path, classifier) as world:  # same database, a new bot process
        # the old answer is a message of the previous fake; post its button again as it was
        message_id = await world.fake.send_message(GENERAL, ALICE, "placeholder")
        world.fake.messages[message_id].components = [
            {
                "type": 1,
                "components": [{"type": 2, "style": 2, "label": "x", "custom_id": custom_id}],
            }
        ]
        text = await press(world, message_id, custom_id, ALICE)
        assert "you meant **negative**" in text
        (row,) = await corrections(world)
        assert row.text == POSITIVE
