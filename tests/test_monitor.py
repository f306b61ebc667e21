"""The event-loop lag monitor: lag shows when something blocks the loop."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.monitor import LagStats, LoopLagMonitor, percentile


async def _wait_for_samples(monitor: LoopLagMonitor, n: int) -> None:
    async with asyncio.timeout(5):
        while monitor.stats().samples < n:
            await asyncio.sleep(0.005)


async def test_lag_grows_when_a_callback_blocks_the_loop() -> None:
    monitor = LoopLagMonitor(interval=0.01)
    monitor.start()
    try:
        await _wait_for_samples(monitor, 5)
        idle = monitor.stats()
        assert idle.max is not None and idle.max < 0.15
        monitor.reset()
        assert monitor.stats() == LagStats(0, None, None, None)

        loop = asyncio.get_running_loop()
        for _ in range(3):
            loop.call_soon(time.sleep, 0.25)  # a blocking call on the loop
            await asyncio.sleep(0.05)
        await _wait_for_samples(monitor, 6)
        blocked = monitor.stats()
        assert blocked.max is not None and blocked.max >= 0.15
        assert blocked.p99 is not None and blocked.p99 >= 0.15
        assert "event loop lag p50" in blocked.describe()
    finally:
        await monitor.stop()
    assert not monitor.running
    assert monitor.stats().samples >= 6  # samples stay readable after stop


async def test_stop_without_start_and_twice_is_harmless() -> None:
    monitor = LoopLagMonitor()
    await monitor.stop()
    monitor.start()
    monitor.start()  # idempotent
    await monitor.stop()
    await monitor.stop()
    assert monitor.stats().describe() == "event loop lag: no samples yet"


async def test_logs_a_summary_with_the_extra_line(caplog: pytest.LogCaptureFixture) -> None:
    monitor = LoopLagMonitor(interval=0.01, log_every=0.03, extra=lambda: "inference: fine")
    with caplog.at_level(logging.INFO, logger="bot.monitor"):
        monitor.start()
        async with asyncio.timeout(5):
            while not any("inference: fine" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.01)
        await monitor.stop()
    assert any("event loop lag p50" in r.getMessage() for r in caplog.records)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    with pytest.raises(ValueError, match="within 0 and 100"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="interval"):
        LoopLagMonitor(interval=0)
