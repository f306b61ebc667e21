"""A member's data and the bot leaving a server: /my-data, and the guild join / remove events.

/my-data streams the export (bot/storage/export.py) into a spooled temporary file (memory up
to :data:`SPOOL_BYTES`, then disk), and attaches it as JSON, gzipped when the plain file is
over the server's upload limit; a file too large even then is not sent, and the member is told
how to get it from the operator. Being removed from a server records the departure (its rows
are deleted by the purge loop after SENTIMENT_LEAVE_GRACE_DAYS); being added back cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import logging
import shutil
import tempfile
from typing import IO, TYPE_CHECKING, Any, Final, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.history import READ_YOUR_WRITES_S
from bot.interactions import reply_when_ready
from bot.render import member_data_line
from bot.storage import ExportSummary

if TYPE_CHECKING:
    from bot.client import SentimentBot

log = logging.getLogger(__name__)

SPOOL_BYTES: Final = 1024 * 1024  # an export larger than this goes to a temporary file
EXPORT_WAIT_S: Final = 60.0  # a long history takes more than the usual storage wait
FILENAME: Final = "my-data.json"
TOO_LARGE: Final = (
    "Your data is too large to attach here ({size}). The bot's operator can send it to you: "
    "ask them for `sentiment-history --export-user {user} --guild {guild}`."
)


def fit_attachment(source: IO[bytes], size: int, limit: int) -> tuple[str, IO[bytes]] | None:
    """The file to attach: ``source`` as ``my-data.json`` if it fits in ``limit`` bytes, else
    gzipped as ``my-data.json.gz`` if that fits, else None. Blocking: run it in a thread."""
    source.seek(0)
    if size <= limit:
        return FILENAME, source
    packed = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned)
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as zipped:
        shutil.copyfileobj(source, zipped)
    if packed.tell() > limit:
        packed.close()
        return None
    packed.seek(0)
    return FILENAME + ".gz", packed


def human_size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


class PrivacyCog(commands.Cog):
    def __init__(self, bot: SentimentBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="my-data",
        description="Download, privately, everything the bot holds about you in this server",
    )
    @app_commands.guild_only()
    async def my_data(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.guild_id is not None
        guild_id, user_id = interaction.guild_id, interaction.user.id
        where = interaction.guild.name if interaction.guild else "this server"
        limit = interaction.filesize_limit
        storage = self.bot.storage

        async def work() -> tuple[ExportSummary, tuple[str, IO[bytes]] | None]:
            # Land predictions made a moment ago, so they are in the file.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(storage.flush(), READ_YOUR_WRITES_S)
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
            try:
                summary = await storage.export_member(
                    guild_id, user_id, lambda text: spool.write(text.encode("utf-8"))
                )
                attachment = await asyncio.to_thread(
                    fit_attachment, spool, summary.size_bytes, limit
                )
            except BaseException:
                spool.close()
                raise
            if attachment is None or attachment[1] is not spool:
                spool.close()
            return summary, attachment

        def render(result: tuple[ExportSummary, tuple[str, IO[bytes]] | None]) -> dict[str, Any]:
            summary, attachment = result
            line = member_data_line(
                summary.counts,
                opted_out=summary.opted_out,
                where=where,
                attached=attachment[0] if attachment else None,
            )
            if attachment is None:
                size = human_size(summary.size_bytes)
                line += "\n" + TOO_LARGE.format(size=size, user=user_id, guild=guild_id)
                return {"content": line}
            name, data = attachment
            # A spooled temporary file: bytes in memory or a real file, read as it is sent.
            return {"content": line, "file": discord.File(cast(io.BufferedIOBase, data), name)}

        await reply_when_ready(
            interaction,
            work(),
            render,
            ephemeral=True,
            storage=storage,
            storage_wait_s=EXPORT_WAIT_S,
        )

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Catch up with what happened while the bot was offline: servers that added it back
        keep their rows; servers that removed it are noted as left (from now)."""
        present = [guild.id for guild in self.bot.guilds]
        try:
            cancelled, recorded = await self.bot.storage.reconcile_guilds(
                present, owns=self.bot.serves
            )
        except Exception:
            log.exception("could not compare the stored guilds with the guilds the bot is in")
            return
        if cancelled:
            log.info("added back while offline to guilds %s: nothing deleted", cancelled)
        if recorded:
            log.warning(
                "the bot is no longer in guilds %s (removed while it was offline?): their "
                "settings and predictions are deleted in %d days unless it is added back",
                recorded,
                self.bot.settings.leave_grace_days,
            )

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a server (kicked, banned, the server deleted): note when, so that its
        rows are deleted once the grace period has passed."""
        try:
            await self.bot.storage.record_guild_departure(guild.id)
        except Exception:
            log.exception("could not record leaving guild %s; its rows are kept", guild.id)
            return
        log.info(
            "removed from guild %s: its settings and predictions are deleted in %d days unless "
            "the bot is added back",
            guild.id,
            self.bot.settings.leave_grace_days,
        )

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        """Added to a server, maybe back within the grace period: keep what it had."""
        try:
            cancelled = await self.bot.storage.cancel_guild_departure(guild.id)
        except Exception:
            log.exception("could not cancel the departure of guild %s", guild.id)
            return
        if cancelled:
            log.info("added back to guild %s within the grace period: nothing deleted", guild.id)


async def setup(bot: SentimentBot) -> None:
    await bot.add_cog(PrivacyCog(bot))
