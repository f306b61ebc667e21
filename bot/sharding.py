"""What a sharded bot's process adds to the command: a tag on its log lines naming its shards,
and one line for Discord's closes about sharding (4010 invalid shard, 4011 sharding
required). The settings are in bot/config.py, the rule of which guild a process serves in
bot/decisions.py, the sharded client in bot/client.py."""

from __future__ import annotations

import logging

from bot.config import Settings


class ShardTagFormatter(logging.Formatter):
    """Puts ``[shards 0-1 of 4]`` before each message, so that the lines of several processes
    in one log say which shards wrote them; ``inner`` formats the rest (colours included)."""

    def __init__(self, inner: logging.Formatter, tag: str) -> None:
        super().__init__()
        self.inner = inner
        self.tag = tag

    def format(self, record: logging.LogRecord) -> str:
        tagged = logging.makeLogRecord(record.__dict__)  # the record itself stays as it was
        tagged.msg, tagged.args = f"[{self.tag}] {record.getMessage()}", None
        return self.inner.format(tagged)


def sharding_refusal(code: int | None, settings: Settings) -> str | None:
    """The line for a gateway close about sharding (4010 invalid shard, 4011 sharding
    required), None for any other close."""
    count = settings.shard_count
    if code == 4011 and count is None:
        return (
            "Discord requires sharding: the bot is in too many servers for one gateway "
            "connection (2,500 at most). Set SENTIMENT_SHARD_COUNT (about one shard per 1,000 "
            "servers) and SENTIMENT_SHARD_IDS per process (README: 'Sharding')."
        )
    if code == 4011:
        return (
            f"Discord requires more shards: with SENTIMENT_SHARD_COUNT={count} a shard holds "
            "more than 2,500 servers. Raise SENTIMENT_SHARD_COUNT for every process (about "
            "one shard per 1,000 servers) and restart them all."
        )
    if code == 4010:
        return (
            f"Discord refused the shard (close code 4010, invalid shard) for SENTIMENT_SHARD_COUNT="
            f"{count} and SENTIMENT_SHARD_IDS={','.join(map(str, settings.shards))}: every process "
            "needs the same count and ids from 0 to count - 1."
        )
    return None
