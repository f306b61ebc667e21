"""One gateway websocket: its compression (zlib-stream or zstd-stream, one compressor per
connection, frames sent in order) and the session a connection carries."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakediscord.protocol import JSON, shard_of


class _ZstdStream:
    """Streaming zstd compression compatible with discord.py's zstd-stream decompressor."""

    def __init__(self) -> None:
        self._flush: Callable[[bytes], bytes]
        try:
            zstandard: Any = importlib.import_module("zstandard")
        except ImportError:
            stdlib: Any = importlib.import_module("compression.zstd")  # Python 3.14+
            compressor = stdlib.ZstdCompressor()
            block = stdlib.ZstdCompressor.FLUSH_BLOCK
            self._flush = lambda data: bytes(compressor.compress(data, mode=block))
        else:
            obj = zstandard.ZstdCompressor().compressobj()
            flush_mode = zstandard.COMPRESSOBJ_FLUSH_BLOCK
            self._flush = lambda data: bytes(obj.compress(data) + obj.flush(flush_mode))

    def compress(self, data: bytes) -> bytes:
        return self._flush(data)


def zstd_available() -> bool:
    """Whether a zstd module (``zstandard`` or Python 3.14's ``compression.zstd``) imports."""
    for name in ("zstandard", "compression.zstd"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
            return True
    return False


class GatewayConnection:
    """One websocket connection; owns its compressor so frames stay in compressor order."""

    def __init__(self, ws: web.WebSocketResponse, compression: str | None, number: int) -> None:
        self.ws = ws
        self.compression = compression
        self.number = number
        self.session: GatewaySession | None = None
        self._lock = asyncio.Lock()
        self._zlib = zlib.compressobj() if compression == "zlib-stream" else None
        self._zstd = _ZstdStream() if compression == "zstd-stream" else None

    async def send(self, payload: JSON) -> None:
        await self.send_many([payload])

    async def send_many(self, payloads: list[JSON]) -> None:
        """Send frames in order, holding the lock so no other frame interleaves."""
        async with self._lock:
            for payload in payloads:
                text = json.dumps(payload, separators=(",", ":"))
                if self._zlib is not None:
                    data = self._zlib.compress(text.encode())
                    await self.ws.send_bytes(data + self._zlib.flush(zlib.Z_SYNC_FLUSH))
                elif self._zstd is not None:
                    await self.ws.send_bytes(self._zstd.compress(text.encode()))
                else:
                    await self.ws.send_str(text)


@dataclass(eq=False)
class GatewaySession:
    """An identified session: its sequence numbers and the history a RESUME replays."""

    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    history: deque[JSON] = field(default_factory=lambda: deque(maxlen=2000))
    connection: GatewayConnection | None = None
    resumable: bool = True  # False after a close code that ends the session (4007, 4009)
    live: bool = False  # READY and its GUILD_CREATEs sent (or RESUMED), connection still open

    @property
    def shard_id(self) -> int:
        """The shard this session is (0 for a client that did not ask for sharding)."""
        return 0 if self.shard is None else self.shard[0]

    @property
    def shard_count(self) -> int:
        return 1 if self.shard is None else self.shard[1]

    def covers(self, guild_id: int | None) -> bool:
        """Whether this session gets the guild's events (direct messages: shard 0 only)."""
        if guild_id is None:
            return self.shard_id == 0
        return shard_of(guild_id, self.shard_count) == self.shard_id


@dataclass(frozen=True)
class GatewayConnectionInfo:
    """What one gateway connection asked for (for assertions about the client)."""

    number: int
    query: dict[str, str]
    compression: str | None
