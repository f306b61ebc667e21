"""Mood alerts, the service: a background task that checks the watched channels every
``interval`` seconds (and soon after a message in one of them: :meth:`AlertService.poke`),
reads each channel's figures from the predictions already logged (indexed queries on storage's
reader connection, never on the message path), asks the rules (:func:`bot.alerts.decide`) and
has the alert or the "resolved" line posted, then stores the channel's new state.

It knows nothing of Discord: ``post`` (given by the client) sends a notice and returns the
message id, or raises :class:`AlertPostError` with the reason; then nothing is stored and the next
check tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from bot.alerts import (
    BASELINE_DAYS,
    TOP_MESSAGES,
    AlertNotice,
    Decision,
    Figures,
    NegativeMessage,
    Notice,
    ResolvedNotice,
    decide,
    next_state,
)
from bot.storage import Storage, StoredPrediction
from bot.storage.alerts import AlertConfig, Watch

log = logging.getLogger(__name__)

HOUR: Final = timedelta(hours=1)
MIN_GAP_S: Final = 1.0  # at most one check per second, however many messages arrive
WARN_EVERY_S: Final = 600.0


class AlertPostError(Exception):
    """A notice could not be posted; the message says why and what to do."""


def figures_of(counts: dict[str, int]) -> Figures:
    """Mood counts (``Storage.channel_moods``) as figures: texts not read count under none."""
    read = counts.get("positive", 0) + counts.get("neutral", 0) + counts.get("negative", 0)
    return Figures(negative=counts.get("negative", 0), read=read)


def negativity(row: StoredPrediction) -> float:
    return row.p_negative if row.p_negative is not None else 1.0 - row.p_positive


class AlertService:
    """Checks the watched channels of every guild; start inside the loop, stop before the
    storage closes. ``interval``: seconds between checks; ``clock``: now, as an aware UTC
    datetime (tests may move it); ``serves``: the guilds this process checks (a sharded bot's
    process checks its shards' guilds, so no alert is posted twice); default every guild."""

    def __init__(
        self,
        storage: Storage,
        post: Callable[[Notice], Awaitable[int]],
        *,
        interval: float = 30.0,
        min_gap: float = MIN_GAP_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        serves: Callable[[int], bool] = lambda guild_id: True,
    ) -> None:
        self.storage = storage
        self.serves = serves
        self.post = post
        self.interval = interval
        self.min_gap = min(min_gap, interval)
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Condition()
        self.checks = 0  # completed checks
        self.checked_from = 0.0  # time.monotonic() when the last completed check started
        self._last_why: dict[tuple[int, int], str] = {}
        self._warned: dict[tuple[str, int], float] = {}

    async def start(self) -> None:
        """Load the alert settings (so the message path knows the watched channels) and
        start checking."""
        await self.storage.alert_configs()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mood-alerts")

    async def stop(self) -> None:
        """Stop checking (a check under way is cancelled; it stored nothing half-way)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def poke(self) -> None:
        """A message in a watched channel was logged: check soon (at most once per
        ``min_gap`` seconds), not only at the next interval. Constant time."""
        self._wake.set()

    async def wait_checked(self, since: float, timeout: float) -> None:
        """Wait until a check that started after ``since`` (``time.monotonic()``) is done;
        TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout), self._done:
            await self._done.wait_for(lambda: self.checked_from > since)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            started = time.monotonic()
            try:
                await self.check()
            except Exception as exc:
                self._warn("check", 0, "mood alerts: the check failed (%s); it runs again", exc)
            async with self._done:
                self.checks += 1
                self.checked_from = started
                self._done.notify_all()
            await asyncio.sleep(self.min_gap)

    async def check(self) -> None:
        """Check every watched channel of every guild that has an alert channel, once."""
        now = self.clock()
        for config in list((await self.storage.alert_configs()).values()):
            if config.alert_channel_id is None or not config.watches:
                continue
            if not self.serves(config.guild_id):
                continue  # another process's shard
            used = await self.storage.alerts_since(config.guild_id, now - HOUR)
            for watch in list(config.watches.values()):
                outcome = await self._check_channel(config, watch, now, used)
                if outcome == "failed":
                    break  # the alert channel refuses: the guild's other channels wait too
                if outcome == "alert":
                    used += 1

    async def _check_channel(
        self, config: AlertConfig, watch: Watch, now: datetime, used: int
    ) -> str:
        """Check one channel; the outcome carried out ("failed": it could not be posted)."""
        guild_id, channel_id, rule = config.guild_id, watch.channel_id, watch.rule
        assert config.alert_channel_id is not None
        since = now - timedelta(minutes=rule.window_minutes)
        figures = figures_of(await self.storage.channel_moods(guild_id, channel_id, since, now))
        decision = decide(
            rule,
            watch.state,
            figures,
            now=now,
            alerts_last_hour=used,
            hourly_cap=config.hourly_cap,
        )
        self._note(guild_id, channel_id, figures, decision)
        notice: Notice
        if decision.outcome == "alert":
            notice = await self._alert_notice(config, watch, figures, decision, since, now)
        elif decision.outcome == "resolved":
            notice = ResolvedNotice(
                guild_id=guild_id,
                channel_id=channel_id,
                alert_channel_id=config.alert_channel_id,
                rule=rule,
                figures=figures,
                quiet=figures.read < rule.min_messages,
                alert_message_id=watch.state.alert_message_id,
                at=now,
            )
        else:
            return decision.outcome
        try:
            message_id = await self.post(notice)
        except AlertPostError as exc:
            self._warn(
                "post", guild_id, "mood alert for channel %s not posted: %s", channel_id, exc
            )
            return "failed"
        state = next_state(watch.state, decision, now=now, message_id=message_id)
        posted_at = now if decision.outcome == "alert" else None
        await self.storage.record_alert_state(guild_id, channel_id, state, posted_at=posted_at)
        log.info(
            "mood alert: %s in channel %s of guild %s (%d of %d negative)",
            decision.outcome,
            channel_id,
            guild_id,
            figures.negative,
            figures.read,
        )
        return decision.outcome

    async def _alert_notice(
        self,
        config: AlertConfig,
        watch: Watch,
        figures: Figures,
        decision: Decision,
        since: datetime,
        now: datetime,
    ) -> AlertNotice:
        guild_id, channel_id = config.guild_id, watch.channel_id
        assert config.alert_channel_id is not None
        worst = await self.storage.most_negative(
            guild_id, channel_id, since, now, limit=TOP_MESSAGES
        )
        before = since - timedelta(days=BASELINE_DAYS)
        usual = figures_of(await self.storage.channel_moods(guild_id, channel_id, before, since))
        shows_text = (await self.storage.guild_settings(guild_id)).store_auto_text
        return AlertNotice(
            guild_id=guild_id,
            channel_id=channel_id,
            alert_channel_id=config.alert_channel_id,
            rule=watch.rule,
            figures=figures,
            usual=usual,
            messages=tuple(
                NegativeMessage(
                    message_id=row.message_id,
                    negativity=negativity(row),
                    text=row.text if shows_text else None,
                )
                for row in worst
                if row.message_id is not None
            ),
            last_before_cap=decision.last_before_cap,
            hourly_cap=config.hourly_cap,
            at=now,
        )

    def _note(self, guild_id: int, channel_id: int, figures: Figures, decision: Decision) -> None:
        """Log why a channel's outcome changed (once per change, not once per check)."""
        key = (guild_id, channel_id)
        if self._last_why.get(key) == decision.why:
            return
        self._last_why[key] = decision.why
        level = logging.INFO if "cap" in decision.why else logging.DEBUG
        log.log(
            level,
            "mood alerts: channel %s of guild %s: %s (%d of %d negative)",
            channel_id,
            guild_id,
            decision.why,
            figures.negative,
            figures.read,
        )

    def _warn(self, kind: str, where: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned.get((kind, where), -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[(kind, where)] = now
            log.warning(msg, *args)
