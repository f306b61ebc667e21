"""Is the bot healthy? The answer of ``/healthz`` (bot/endpoint.py), from plain values.

Healthy means all of these hold (each one that fails is named in ``problems``):

1. the bot is not shutting down;
2. the gateway is ready: every shard this process runs has received READY and streamed its
   guilds (discord.py's ``is_ready()``);
3. every shard's websocket is open (not closed, nor between a drop and its reconnect);
4. the database is writable: the writer task runs, is not in a failure streak (a write failed
   and is being retried) and has not stopped for good (a corrupt or vanished database);
5. the storage backlog is below its bound (at the bound new predictions are not stored and
   not reacted to).

Heartbeat latency and event-loop lag are reported, not judged: a slow heartbeat is Discord's or
the network's state, and a loop wedged hard enough to matter cannot answer at all, which is
the failure an HTTP health check sees (``/healthz`` is answered on the event loop itself).

:func:`gateway_shards` reads the shards of a discord.py client (one shard, 0, for a client
that is not sharded); :func:`assess` judges the values; neither touches the network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord

from bot.monitor import LagStats
from bot.storage import WriterStats

__all__ = ["HealthReport", "ShardState", "assess", "gateway_shards"]


@dataclass(frozen=True)
class ShardState:
    """One gateway shard of this process: its id, whether its websocket is open, and the
    last heartbeat's round trip in seconds (None before the first acknowledged heartbeat)."""

    id: int
    connected: bool
    latency: float | None


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    problems: tuple[str, ...]
    body: dict[str, Any]  # the JSON of /healthz

    @property
    def status(self) -> int:
        """The HTTP status of /healthz: 200 when healthy, 503 when not."""
        return 200 if self.healthy else 503


def _seconds(value: float) -> float | None:
    return value if math.isfinite(value) else None


def gateway_shards(client: discord.Client) -> list[ShardState]:
    """The shards this process runs, by id: those of an ``AutoShardedClient`` once it has
    launched them, else the client's one shard (``shard_id``, 0 when unsharded)."""
    if isinstance(client, discord.AutoShardedClient):
        return [
            ShardState(shard_id, not info.is_closed(), _seconds(info.latency))
            for shard_id, info in sorted(client.shards.items())
        ]
    ws = client.ws
    connected = ws is not None and ws.open and not client.is_closed()
    return [ShardState(client.shard_id or 0, connected, _seconds(client.latency))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def assess(
    *,
    ready: bool,
    closing: bool,
    shard_count: int,
    shards: Sequence[ShardState],
    writer: WriterStats,
    failure: str | None,
    queue_depth: int,
    loop_lag: LagStats,
) -> HealthReport:
    """Judge the bot's state (see the module docstring for what healthy means).

    ``failure``: the database's words for why writes are being retried (None when they are
    not); ``queue_depth``: texts waiting for the model; ``shard_count``: the application's
    shards in all (1 when unsharded)."""
    problems: list[str] = []
    if closing:
        problems.append("shutting down")
    if not ready:
        problems.append("gateway not ready")
    if not shards:
        problems.append("no gateway shard started")
    for shard in shards:
        if not shard.connected:
            problems.append(f"shard {shard.id} disconnected")
    if writer.unavailable is not None:
        problems.append(f"database unavailable: {writer.unavailable}")
    elif writer.failing:
        problems.append(f"database not writable: {failure or 'writes are failing'}")
    elif not writer.running:
        problems.append("database writer stopped")
    if writer.pending >= writer.limit:
        problems.append(f"storage backlog full ({writer.pending} of {writer.limit})")
    writable = writer.running and not writer.failing and writer.unavailable is None
    body: dict[str, Any] = {
        "healthy": not problems,
        "problems": problems,
        "gateway": {
            "ready": ready,
            "closing": closing,
            "shard_count": shard_count,
            "shards": [
                {"id": s.id, "connected": s.connected, "latency_ms": _ms(s.latency)} for s in shards
            ],
        },
        "database": {
            "writable": writable,
            "failing": writer.failing,
            "failure": failure if writer.failing else None,
            "unavailable": writer.unavailable,
        },
        "storage": {
            "backlog": writer.pending,
            "backlog_limit": writer.limit,
            "written": writer.written,
            "failed_writes": writer.failed_batches,
        },
        "inference": {"queue_depth": queue_depth},
        "event_loop_lag_ms": {
            "p50": _ms(loop_lag.p50),
            "p99": _ms(loop_lag.p99),
            "max": _ms(loop_lag.max),
        },
    }
    return HealthReport(not problems, tuple(problems), body)
