"""Mood alerts, the rules: when a watched channel's share of negative messages calls for an
alert, when an alert is resolved, and the caps that keep a raid from flooding moderators.

Plain values and one function, :func:`decide`: no I/O, no clock, no discord objects. The
service (bot/alert_service.py) reads the figures from the predictions already logged and the
state from storage, asks :func:`decide`, posts what it says and stores :func:`next_state`.

* An alert when the share of negative messages over the window reaches the threshold, with at
  least the minimum number of messages read in it.
* Hysteresis: once alerting, a channel is resolved only when the share falls below a lower
  level (or the window holds fewer than the minimum: the channel went quiet); in between,
  nothing more is posted.
* Caps: at most one alert per channel per ``cooldown_minutes`` (a second burst soon after the
  first is not announced again), and at most ``hourly_cap`` alerts per guild in any hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

# Defaults of /sentiment-admin alerts watch and channel.
DEFAULT_WINDOW_MINUTES: Final = 10
DEFAULT_MIN_MESSAGES: Final = 10
DEFAULT_COOLDOWN_MINUTES: Final = 60
DEFAULT_HOURLY_CAP: Final = 6
RESOLVE_FRACTION: Final = 0.7  # by default, resolved below 70% of the threshold
MAX_WINDOW_MINUTES: Final = 1_440
MAX_COOLDOWN_MINUTES: Final = 10_080  # a week
MAX_MIN_MESSAGES: Final = 10_000
MAX_HOURLY_CAP: Final = 60
BASELINE_DAYS: Final = 7  # the channel's usual level: its negative share over this many days
TOP_MESSAGES: Final = 3  # jump links to the most negative messages in an alert

Outcome = Literal["alert", "resolved", "nothing"]


@dataclass(frozen=True)
class WatchRule:
    """How one channel is watched. Shares are fractions (0.4 is 40%)."""

    threshold: float  # alert when the negative share reaches this
    resolve_below: float  # resolved when it falls below this (< threshold)
    window_minutes: int
    min_messages: int
    cooldown_minutes: int  # at most one alert per channel per this many minutes

    def __post_init__(self) -> None:
        problem = rule_problem(self)
        if problem is not None:
            raise ValueError(problem)


def default_resolve(threshold: float) -> float:
    """The level below which an alert at ``threshold`` is resolved, unless one is given."""
    return round(threshold * RESOLVE_FRACTION, 4)


def rule_problem(rule: WatchRule) -> str | None:
    """Why ``rule`` cannot be used, in one line naming the option and the fix, or None."""
    if not 0.0 < rule.threshold <= 1.0:
        return f"threshold must be from 1 to 100 percent, got {rule.threshold:.0%}"
    if not 0.0 <= rule.resolve_below < rule.threshold:
        return (
            f"resolve_below ({rule.resolve_below:.0%}) must be below the threshold "
            f"({rule.threshold:.0%}): leave it out for {default_resolve(rule.threshold):.0%}"
        )
    for name, value, high in (
        ("window", rule.window_minutes, MAX_WINDOW_MINUTES),
        ("minimum", rule.min_messages, MAX_MIN_MESSAGES),
        ("cooldown", rule.cooldown_minutes, MAX_COOLDOWN_MINUTES),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            return f"{name} must be a whole number from 1 to {high}, got {value!r}"
    return None


@dataclass(frozen=True)
class WatchState:
    """What is remembered of a watched channel between checks (stored)."""

    alerting: bool = False
    last_alert_at: datetime | None = None  # the last alert posted (for the channel's cap)
    alert_message_id: int | None = None  # that alert's message, linked from "resolved"


@dataclass(frozen=True)
class Figures:
    """The window's messages that the model read, and how many of them were negative."""

    negative: int
    read: int

    @property
    def share(self) -> float:
        return self.negative / self.read if self.read else 0.0


@dataclass(frozen=True)
class Decision:
    """What to do after one check of one channel, and why (a few words, for logs and tests).

    ``last_before_cap``: an alert that uses the guild's last one of the hour (the alert says
    that further ones are held back until the hour is over)."""

    outcome: Outcome
    why: str
    last_before_cap: bool = False


def decide(
    rule: WatchRule,
    state: WatchState,
    figures: Figures,
    *,
    now: datetime,
    alerts_last_hour: int,
    hourly_cap: int,
) -> Decision:
    """Alert, resolved, or nothing, for one channel.

    ``alerts_last_hour``: alerts posted for the guild (all channels) in the hour before
    ``now``; ``hourly_cap``: how many it may have.
    """
    if state.alerting:
        if figures.read < rule.min_messages:
            return Decision("resolved", "quiet: fewer messages than the minimum")
        if figures.share < rule.resolve_below:
            return Decision("resolved", "calm: below the resolve level")
        return Decision("nothing", "still alerting")
    if figures.read < rule.min_messages:
        return Decision("nothing", "too few messages")
    if figures.share < rule.threshold:
        return Decision("nothing", "below the threshold")
    if state.last_alert_at is not None and now - state.last_alert_at < timedelta(
        minutes=rule.cooldown_minutes
    ):
        return Decision("nothing", "channel cap: alerted within the cooldown")
    if alerts_last_hour >= hourly_cap:
        return Decision("nothing", "guild cap: hourly alerts used up")
    return Decision(
        "alert", "above the threshold", last_before_cap=alerts_last_hour + 1 >= hourly_cap
    )


def next_state(
    state: WatchState, decision: Decision, *, now: datetime, message_id: int | None = None
) -> WatchState:
    """The state to store once ``decision`` was carried out (``message_id``: the alert's)."""
    if decision.outcome == "alert":
        return WatchState(alerting=True, last_alert_at=now, alert_message_id=message_id)
    if decision.outcome == "resolved":
        return WatchState(alerting=False, last_alert_at=state.last_alert_at)
    return state


# -- what is posted ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NegativeMessage:
    """One of the most negative messages of a window, for its jump link."""

    message_id: int
    negativity: float  # a three-way model's P(negative), else 1 - P(positive)
    text: str | None  # None unless the guild stores text


@dataclass(frozen=True)
class AlertNotice:
    """An alert to post: the channel, its figures against its usual level, the worst
    messages. ``usual``: the negative share over the :data:`BASELINE_DAYS` before the window
    (``read`` 0: no messages then)."""

    guild_id: int
    channel_id: int
    alert_channel_id: int
    rule: WatchRule
    figures: Figures
    usual: Figures
    messages: tuple[NegativeMessage, ...]
    last_before_cap: bool
    hourly_cap: int
    at: datetime


@dataclass(frozen=True)
class ResolvedNotice:
    """The line that says an alerting channel has calmed (or gone quiet)."""

    guild_id: int
    channel_id: int
    alert_channel_id: int
    rule: WatchRule
    figures: Figures
    quiet: bool  # fewer messages than the minimum, rather than a share below the level
    alert_message_id: int | None
    at: datetime


Notice = AlertNotice | ResolvedNotice


def jump_link(guild_id: int, channel_id: int, message_id: int) -> str:
    """The link that opens a message in Discord."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"
