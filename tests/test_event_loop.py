"""The bot's event loop: uvloop where it is installed (bot/app.py run_event_loop), asyncio's
own where it is not."""

from __future__ import annotations

import asyncio
import builtins
import sys
from typing import Any

import pytest

from bot.app import run_event_loop


async def loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is a dependency off Windows only")
def test_the_bot_runs_on_uvloop() -> None:
    assert run_event_loop(loop_module()).startswith("uvloop")


def test_without_uvloop_it_runs_on_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert run_event_loop(loop_module()).startswith("asyncio")
