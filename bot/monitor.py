"""Event-loop lag: how late the loop runs a task that asked to wake up at a given time.

A task sleeps ``interval`` seconds, again and again, and records how much later than asked it
woke. On an idle loop that is well under a millisecond; anything that holds the loop (a
blocking call in a handler, a long CPU-bound step between awaits) shows up as lag, and every
event handler waits that long too. The bot starts one in ``setup_hook`` (``bot.loop_lag``) and
stops it in ``close``; with ``log_every`` it logs a summary line at INFO; with ``observe``
each sample is also handed on as it is taken (the ``/metrics`` histogram, bot/metrics.py).

This module knows nothing of Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["LagStats", "LoopLagMonitor"]

DEFAULT_INTERVAL = 0.05
DEFAULT_WINDOW = 12_000  # samples kept: 10 minutes at the default interval


@dataclass(frozen=True)
class LagStats:
    """Lag over the recent window, in seconds (``None`` before the first sample)."""

    samples: int
    p50: float | None
    p99: float | None
    max: float | None

    def describe(self) -> str:
        if not self.samples:
            return "event loop lag: no samples yet"
        return (
            f"event loop lag p50 {_ms(self.p50)} ms, p99 {_ms(self.p99)} ms, "
            f"max {_ms(self.max)} ms ({self.samples} samples)"
        )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000.0:.1f}"


def percentile(samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``samples``; ``None`` when empty."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0 and 100, got {q}")
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


class LoopLagMonitor:
    """Measures the lag of the running event loop; use from that loop.

    ``log_every`` (seconds, ``None``: never) logs :meth:`stats` at INFO, followed by what
    ``extra()`` returns (e.g. the inference counters). ``observe`` is called with each sample
    (seconds) as it is taken.
    """

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        window: int = DEFAULT_WINDOW,
        log_every: float | None = None,
        extra: Callable[[], str] | None = None,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.interval = interval
        self.log_every = log_every
        self._extra = extra
        self._observe = observe
        self._samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start measuring on the running loop. Idempotent."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop measuring (the samples stay readable). Safe to call when never started."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reset(self) -> None:
        """Forget the samples so far (e.g. to measure one burst only)."""
        self._samples.clear()

    def stats(self) -> LagStats:
        samples = list(self._samples)
        return LagStats(
            samples=len(samples),
            p50=percentile(samples, 50),
            p99=percentile(samples, 99),
            max=max(samples) if samples else None,
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_log = loop.time() + self.log_every if self.log_every else math.inf
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            now = loop.time()
            lag = max(0.0, now - expected)
            self._samples.append(lag)
            if self._observe is not None:
                self._observe(lag)
            if now >= next_log:
                next_log = now + (self.log_every or math.inf)
                self._log_summary()

    def _log_summary(self) -> None:
        line = self.stats().describe()
        if self._extra is not None:
            try:
                line = f"{line}; {self._extra()}"
            except Exception:  # a broken summary must not stop the measurements
                log.exception("loop lag monitor: the extra summary failed")
        log.info("%s", line)
