"""Mood alerts: the rules (bot/alerts.py, fast, no bot), the notices as moderators read them,
and the settings and state as storage keeps them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alert_service import AlertPostError, AlertService, figures_of
from bot.alerts import (
    AlertNotice,
    Decision,
    Figures,
    NegativeMessage,
    Notice,
    ResolvedNotice,
    WatchRule,
    WatchState,
    decide,
    default_resolve,
    jump_link,
    next_state,
    rule_problem,
)
from bot.decisions import ChatMessage, skip_in_channel
from bot.inference import InferenceService
from bot.mood import MoodService
from bot.render import alert_embed, alert_settings_embed, resolved_line
from bot.storage import DEFAULT_NEGATIVE_EMOJI, PredictionRecord, Storage
from bot.storage.dsn import Dsn
from model import Prediction

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
RULE = WatchRule(
    threshold=0.5, resolve_below=0.3, window_minutes=10, min_messages=5, cooldown_minutes=60
)
CALM = WatchState()
ALERTING = WatchState(alerting=True, last_alert_at=NOW - timedelta(minutes=5), alert_message_id=7)


def check(
    figures: Figures,
    state: WatchState = CALM,
    *,
    used: int = 0,
    cap: int = 6,
    now: datetime = NOW,
    rule: WatchRule = RULE,
) -> Decision:
    return decide(rule, state, figures, now=now, alerts_last_hour=used, hourly_cap=cap)


# -- the decision -------------------------------------------------------------------------------


def test_alert_when_the_share_reaches_the_threshold() -> None:
    assert check(Figures(negative=5, read=10)).outcome == "alert"  # 50%: crossed
    assert check(Figures(negative=9, read=10)).outcome == "alert"
    below = check(Figures(negative=4, read=10))
    assert (below.outcome, below.why) == ("nothing", "below the threshold")


def test_no_alert_under_the_minimum_number_of_messages() -> None:
    few = check(Figures(negative=4, read=4))  # 100% negative, but only 4 messages
    assert (few.outcome, few.why) == ("nothing", "too few messages")
    assert check(Figures(negative=5, read=5)).outcome == "alert"


def test_hysteresis_resolves_only_below_the_lower_level() -> None:
    # Between the resolve level (30%) and the threshold (50%): still alerting, nothing posted.
    for negative in (3, 4, 5, 9):
        decision = check(Figures(negative=negative, read=10), ALERTING)
        assert (decision.outcome, decision.why) == ("nothing", "still alerting")
    calm = check(Figures(negative=2, read=10), ALERTING)
    assert calm.outcome == "resolved" and calm.why.startswith("calm")
    # A calm channel that is not alerting has nothing to resolve.
    assert check(Figures(negative=0, read=10)).outcome == "nothing"


def test_a_channel_gone_quiet_is_resolved() -> None:
    quiet = check(Figures(negative=2, read=2), ALERTING)
    assert quiet.outcome == "resolved" and quiet.why.startswith("quiet")


def test_at_most_one_alert_per_channel_per_cooldown() -> None:
    resolved = next_state(ALERTING, Decision("resolved", "calm"), now=NOW)
    assert resolved == WatchState(alerting=False, last_alert_at=ALERTING.last_alert_at)
    burst = Figures(negative=10, read=10)
    again = check(burst, resolved)  # 5 minutes after the alert, cooldown 60
    assert (again.outcome, again.why) == ("nothing", "channel cap: alerted within the cooldown")
    later = NOW + timedelta(minutes=55)  # 60 minutes after the alert
    assert check(burst, resolved, now=later).outcome == "alert"


def test_the_guild_hourly_cap_holds_alerts_back() -> None:
    burst = Figures(negative=10, read=10)
    held = check(burst, used=3, cap=3)
    assert (held.outcome, held.why) == ("nothing", "guild cap: hourly alerts used up")
    last = check(burst, used=2, cap=3)
    assert last.outcome == "alert" and last.last_before_cap
    assert not check(burst, used=1, cap=3).last_before_cap


def test_next_state_after_an_alert_and_after_nothing() -> None:
    alert = next_state(CALM, Decision("alert", "x"), now=NOW, message_id=42)
    assert alert == WatchState(alerting=True, last_alert_at=NOW, alert_message_id=42)
    assert next_state(ALERTING, Decision("nothing", "x"), now=NOW) is ALERTING


def test_bad_rules_are_refused_with_the_option_named() -> None:
    assert rule_problem(RULE) is None
    assert default_resolve(0.5) == 0.35
    with pytest.raises(ValueError, match=r"resolve_below .* must be below the threshold"):
        WatchRule(0.5, 0.5, 10, 5, 60)
    with pytest.raises(ValueError, match="window must be a whole number from 1 to 1440"):
        WatchRule(0.5, 0.3, 0, 5, 60)
    with pytest.raises(ValueError, match="threshold must be from 1 to 100 percent"):
        WatchRule(1.5, 0.3, 10, 5, 60)


def test_figures_count_only_what_the_model_read() -> None:
    figures = figures_of({"positive": 3, "neutral": 2, "negative": 5, "unread": 40})
    assert figures == Figures(negative=5, read=10) and figures.share == 0.5
    assert Figures(0, 0).share == 0.0


# -- what moderators read -----------------------------------------------------------------------


def notice(text: str | None) -> AlertNotice:
    return AlertNotice(
        guild_id=1,
        channel_id=2,
        alert_channel_id=3,
        rule=RULE,
        figures=Figures(negative=8, read=10),
        usual=Figures(negative=12, read=100),
        messages=(NegativeMessage(501, 0.97, text), NegativeMessage(502, 0.91, None)),
        last_before_cap=True,
        hourly_cap=6,
        at=NOW,
    )


def test_the_alert_shows_figures_usual_level_and_jump_links() -> None:
    embed = alert_embed(notice("I **hate** this @everyone"))
    assert "<#2>" in (
        embed.description or ""
    ) and "**80%** negative (8 of 10 messages read in the last 10 minutes)" in (
        embed.description or ""
    )
    fields = {f.name: f.value or "" for f in embed.fields}
    assert fields["Usual level"] == "12% negative over the previous 7 days (100 messages)"
    worst = fields["Most negative"]
    assert jump_link(1, 2, 501) in worst and jump_link(1, 2, 502) in worst
    assert "I \\*\\*hate\\*\\* this @\u200beveryone" in worst  # markup and pings defused
    assert "last alert this hour (cap 6)" in (embed.footer.text or "")


def test_without_stored_text_the_alert_has_links_alone() -> None:
    worst = {f.name: f.value or "" for f in alert_embed(notice(None)).fields}["Most negative"]
    assert worst.count("https://discord.com/channels/1/2/") == 2 and ">" not in worst


def test_the_resolved_line_links_the_alert() -> None:
    calm = ResolvedNotice(1, 2, 3, RULE, Figures(1, 10), quiet=False, alert_message_id=9, at=NOW)
    line = resolved_line(calm)
    assert line.startswith("✅ Resolved: <#2> has calmed: 10% negative")
    assert jump_link(1, 3, 9) in line
    quiet = ResolvedNotice(1, 2, 3, RULE, Figures(0, 1), quiet=True, alert_message_id=None, at=NOW)
    assert "has gone quiet (1 message read in the last 10 minutes)" in resolved_line(quiet)


# -- storage ------------------------------------------------------------------------------------


async def test_settings_and_state_are_stored_and_survive_a_restart(database: Path | Dsn) -> None:
    path = database
    storage = await Storage.open(path)
    try:
        assert not storage.watched(1, 2)
        await storage.alert_configs()
        await storage.set_alert_channel(1, 3, hourly_cap=4)
        config = await storage.watch_channel(1, 2, RULE)
        assert storage.watched(1, 2) and not storage.watched(1, 5)
        assert config.alert_channel_id == 3 and config.hourly_cap == 4
        await storage.record_alert_state(1, 2, ALERTING, posted_at=NOW)
        await storage.record_alert_state(1, 2, ALERTING, posted_at=NOW - timedelta(days=2))
        assert await storage.alerts_since(1, NOW - timedelta(hours=1)) == 1
        # Changing the alert channel keeps the cap; re-watching keeps the state.
        await storage.set_alert_channel(1, 8)
        await storage.watch_channel(1, 2, WatchRule(0.6, 0.4, 5, 3, 30))
    finally:
        await storage.close()
    storage = await Storage.open(path)
    try:
        config = await storage.alert_config(1)
        assert (config.alert_channel_id, config.hourly_cap) == (8, 4)
        watch = config.watches[2]
        assert watch.rule == WatchRule(0.6, 0.4, 5, 3, 30) and watch.state == ALERTING
        removed, config = await storage.unwatch_channel(1, 2)
        assert removed and not config.watches and not storage.watched(1, 2)
        assert (await storage.unwatch_channel(1, 2))[0] is False
        with pytest.raises(ValueError, match="hourly_cap must be a whole number from 1 to 60"):
            await storage.set_alert_channel(1, 8, hourly_cap=0)
        embed = alert_settings_embed(await storage.alert_config(1), "")
        assert "none (add one with /sentiment-admin alerts watch)" in str(embed.fields[-1].value)
    finally:
        await storage.close()


def row(
    message_id: int, label: str, p_negative: float, *, at: datetime, **extra: object
) -> PredictionRecord:
    values: dict[str, object] = {
        "guild_id": 1,
        "channel_id": 2,
        "message_id": message_id,
        "user_id": 10 + message_id % 3,
        "source": "auto",
        "label": label,
        "p_positive": 1.0 - p_negative if label != "neutral" else 0.1,
        "in_band": False,
        "model_version": "test",
        "created_at": at,
        "text": f"text {message_id}",
        "author_id": 10 + message_id % 3,
    } | extra
    return PredictionRecord(**values)  # type: ignore[arg-type]


async def test_the_window_query_counts_the_channels_own_messages(database: Path | Dsn) -> None:
    storage = await Storage.open(database)
    try:
        since = NOW - timedelta(minutes=10)
        for r in (
            row(1, "negative", 0.9, at=NOW - timedelta(minutes=1)),
            row(2, "negative", 0.99, at=NOW - timedelta(minutes=2)),
            row(3, "positive", 0.05, at=NOW - timedelta(minutes=3)),
            row(4, "negative", 0.8, at=NOW - timedelta(minutes=30)),  # before the window
            row(5, "negative", 0.95, at=NOW - timedelta(minutes=1), channel_id=99),  # elsewhere
            row(6, "negative", 0.97, at=NOW - timedelta(minutes=1), source="command"),  # no chat
            row(7, "negative", 0.7, at=NOW - timedelta(minutes=1), in_band=True),  # not confident
        ):
            assert await storage.add(r) is not None
        counts = await storage.channel_moods(1, 2, since, NOW)
        assert figures_of(counts) == Figures(negative=2, read=4)
        worst = await storage.most_negative(1, 2, since, NOW, limit=3)
        assert [w.message_id for w in worst] == [2, 1]
        assert figures_of(await storage.channel_moods(1, 2, NOW - timedelta(days=7), since)) == (
            Figures(negative=1, read=1)
        )
    finally:
        await storage.close()


# -- the service, without Discord ---------------------------------------------------------------


async def test_the_service_caps_a_guild_and_retries_a_post_that_failed(
    database: Path | Dsn,
) -> None:
    """Three channels turn sour at once under an hourly cap of 2: two alerts, the second
    saying it is the last; a post Discord refused is stored as nothing and tried again."""
    storage = await Storage.open(database)
    posted: list[Notice] = []
    refuse = [True]

    async def post(notice: Notice) -> int:
        if refuse[0]:
            refuse[0] = False
            raise AlertPostError("the bot may not post there")
        posted.append(notice)
        return 1000 + len(posted)

    clock = [NOW]
    service = AlertService(storage, post, interval=60, clock=lambda: clock[0])
    try:
        await service.start()
        await storage.set_alert_channel(1, 50, hourly_cap=2)
        for channel in (2, 3, 4):
            await storage.watch_channel(1, channel, RULE)
            for n in range(5):
                at = NOW - timedelta(minutes=1)
                record = row(channel * 10 + n, "negative", 0.9, at=at, channel_id=channel)
                await storage.add(record)
        assert storage.watched(1, 3)
        await service.check()  # the first post fails: nothing stored
        assert posted == [] and not (await storage.alert_config(1)).watches[2].state.alerting
        await service.check()
        alerts = [n for n in posted if isinstance(n, AlertNotice)]
        assert [(n.channel_id, n.last_before_cap) for n in alerts] == [(2, False), (3, True)]
        states = {c: w.state for c, w in (await storage.alert_config(1)).watches.items()}
        assert states[2].alert_message_id == 1001 and states[3].alerting and not states[4].alerting
        await service.check()
        assert len(posted) == 2  # the cap holds channel 4; 2 and 3 are still alerting
        clock[0] = NOW + timedelta(minutes=61)  # the window has emptied: quiet
        await service.check()
        resolved = [n for n in posted if isinstance(n, ResolvedNotice)]
        assert [(n.channel_id, n.quiet, n.alert_message_id) for n in resolved] == [
            (2, True, 1001),
            (3, True, 1002),
        ]
    finally:
        await service.stop()
        await storage.close()


async def test_a_watched_channel_is_read_without_reacting_where_reactions_are_off(
    database: Path | Dsn,
) -> None:
    storage = await Storage.open(database)
    try:

        class Negative:
            def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
                return [Prediction("negative", 0.05, False) for _ in texts]

        async with InferenceService(Negative()) as inference:
            mood = MoodService(inference, storage, "v1", (0.4, 0.6))
            message = ChatMessage(
                id=77,
                guild_id=1,
                channel_id=2,
                parent_id=None,
                author_id=5,
                author_is_bot=False,
                webhook=False,
                content="awful",
            )
            assert skip_in_channel(message, await storage.guild_settings(1), opted_out=False)
            assert await mood.auto_reaction(message) is None
            assert not await storage.has_auto_prediction(77)  # unwatched, reactions off: unread
            assert await mood.auto_reaction(message, watched=True) is None  # read, no reaction
            assert await storage.has_auto_prediction(77)
            await storage.set_auto_channel(1, 2, True)
            message = dataclasses.replace(message, id=78)
            assert await mood.auto_reaction(message, watched=True) == DEFAULT_NEGATIVE_EMOJI
    finally:
        await storage.close()
