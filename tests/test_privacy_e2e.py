"""Privacy as members see it, end to end (the real bot against the fake Discord): whose words a
prediction holds, /forget-me of an author, opted-out authors, and private /sentiment."""

from __future__ import annotations

from e2e_support import ALICE, BOB, GENERAL, GUILD, MOD, NEGATIVE, OWNER, POSITIVE, RANDOM, World

from fakediscord import Reply

BOB_WORDS = "bob-words: This is terrible, I hate it, worst experience ever."
BOB_LATER = "bob-later: This is awful, I hate it, what a horrible day."


async def analyze(world: World, message_id: int, *, user: int, channel: int = RANDOM) -> Reply:
    """The "Analyze sentiment" menu on a message, as ``user``."""
    interaction = await world.fake.invoke_message_command(
        "Analyze sentiment",
        target_message_id=message_id,
        user_id=user,
        channel_id=channel,
        guild_id=GUILD,
    )
    return await interaction.wait_for_reply(timeout=15)


async def test_the_menu_on_someone_elses_message_is_erased_by_the_authors_forget_me(
    world: World,
) -> None:
    await world.slash("sentiment-admin", {"enabled": True}, user=OWNER, subcommand="store-text")
    message = await world.fake.send_message(RANDOM, BOB, BOB_WORDS)
    reply = await analyze(world, message, user=ALICE)
    assert reply.ephemeral and "Negative" in reply.text
    # the row says whose words it holds: bob's, asked for by alice, privately
    (row,) = await world.rows()
    assert (row.user_id, row.author_id, row.private, row.text) == (ALICE, BOB, True, BOB_WORDS)
    assert "bob-words" in (await world.slash("history", user=ALICE)).text

    forgot = await world.slash("forget-me", user=BOB)
    assert "erased 1 prediction" in forgot.text
    assert await world.rows() == []
    assert "bob-words" not in (await world.slash("history", user=ALICE)).text


async def test_an_opted_out_members_message_is_answered_but_never_stored_or_shown(
    world: World,
) -> None:
    await world.slash("sentiment-admin", {"enabled": True}, user=OWNER, subcommand="store-text")
    await world.slash("forget-me", user=BOB)
    later = await world.fake.send_message(RANDOM, BOB, BOB_LATER)
    reply = await analyze(world, later, user=ALICE)
    assert reply.ephemeral and "Negative" in reply.text  # alice still gets her answer
    await world.settle()
    assert await world.rows() == []  # no row at all: no text, no mood of bob's message
    assert "No predictions match" in (await world.slash("history", user=ALICE)).text
    by_mod = await world.slash("channel-history", {"channel": RANDOM}, user=MOD)
    assert "No predictions match" in by_mod.text and "bob-later" not in by_mod.text

    # alice's own messages are analysed and stored as before
    mine = await world.fake.send_message(RANDOM, ALICE, POSITIVE)
    await analyze(world, mine, user=BOB)  # bob opted out: his requests are not logged either
    await analyze(world, mine, user=MOD)
    (row,) = await world.rows()
    assert (row.user_id, row.author_id, row.message_id) == (MOD, ALICE, mine)


async def test_private_sentiment_is_only_in_the_requesters_own_history(world: World) -> None:
    private = await world.slash(
        "sentiment", {"text": f"alice-private {POSITIVE}", "private": True}, user=ALICE
    )
    assert private.ephemeral
    public = await world.slash("sentiment", {"text": f"alice-public {NEGATIVE}"}, user=ALICE)
    assert not public.ephemeral
    rows = {r.text: r for r in await world.rows()}
    assert rows[f"alice-private {POSITIVE}"].private
    assert not rows[f"alice-public {NEGATIVE}"].private

    own = await world.slash("history", user=ALICE)
    assert "alice-private" in own.text and "alice-public" in own.text
    channel = await world.slash("channel-history", {"channel": GENERAL}, user=MOD)
    assert "alice-public" in channel.text and "alice-private" not in channel.text
    assert "1 prediction" in channel.text
    member = await world.slash("history", {"member": ALICE}, user=MOD)
    assert "alice-public" in member.text and "alice-private" not in member.text
    # the server's mood (which anyone may post in the channel) counts the public one only
    mood = await world.slash("mood", {"days": 1}, user=BOB)
    assert "negative: 1 (100%)" in mood.text and "positive: 0" in mood.text
