"""Turning predictions and history rows into Discord embeds. Pure functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import discord

from bot.storage import StoredPrediction
from model import Prediction

MOOD_EMOJI = {"positive": "😊", "negative": "😞", "neutral": "😐"}
MOOD_COLOUR = {
    "positive": discord.Colour.green(),
    "negative": discord.Colour.red(),
    "neutral": discord.Colour.light_grey(),
}
SOURCE_NAMES = {"auto": "reaction", "command": "/sentiment", "context_menu": "menu"}
BAR_CELLS = 10
# Every character Discord's markdown reads anywhere in a line; a backslash makes each one
# literal. URLs are left whole (Discord formats nothing inside them), as discord.py does.
_MARKUP = re.compile(r"[\\*_~`|>\[\]]")
_URL = re.compile(r"<[^: >]+:/[^ >]+>|(?:https?|steam)://[^\s<]+[^<.,:;\"'\]\s]")


def confidence_bar(confidence: float) -> str:
    """``███████░░░ 72%``: the probability of the predicted label."""
    filled = max(0, min(BAR_CELLS, round(confidence * BAR_CELLS)))
    return f"{'█' * filled}{'░' * (BAR_CELLS - filled)} {confidence:.0%}"


def snippet(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, with Discord markup neutralised."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return discord.utils.escape_mentions(escape_markup(flat))


def escape_markup(text: str) -> str:
    """``text`` with all Discord markdown made literal: bold, code, spoilers, masked links...

    Unlike ``discord.utils.escape_markdown``, which escapes only what it recognises as markup
    and so leaves everything between the first "[" and the last ")" of
    ``[a](x) **b** [c](https://...)`` live, every markup character is escaped.
    """
    parts: list[str] = []
    last = 0
    for url in _URL.finditer(text):
        parts += [_MARKUP.sub(r"\\\g<0>", text[last : url.start()]), url[0]]
        last = url.end()
    parts.append(_MARKUP.sub(r"\\\g<0>", text[last:]))
    escaped = "".join(parts)
    # at the start of a line: headings (#), lists and subtext (-)
    return "\\" + escaped if escaped.startswith(("#", "-")) else escaped


def prediction_embed(text: str, prediction: Prediction, band: tuple[float, float]) -> discord.Embed:
    """The answer to /sentiment and to the context menu."""
    if prediction.label == "neutral":
        embed = discord.Embed(
            title=f"{MOOD_EMOJI['neutral']} Nothing to read",
            description="The text has no words the model knows (it is empty, or only emoji, "
            "symbols or invisible characters): there is no mood to tell.",
            colour=MOOD_COLOUR["neutral"],
        )
        return embed
    label = prediction.label
    embed = discord.Embed(
        title=f"{MOOD_EMOJI[label]} {label.capitalize()}",
        colour=MOOD_COLOUR[prediction.mood],
        description=f"> {snippet(text, 300)}" if text.strip() else None,
    )
    embed.add_field(name="Confidence", value=f"`{confidence_bar(prediction.confidence)}`")
    embed.add_field(name="P(positive)", value=f"{prediction.p_positive:.3f}")
    if prediction.in_band:
        low, high = band
        embed.add_field(
            name="Neutral band",
            value=(
                f"{prediction.p_positive:.2f} lies between {low:.2f} and {high:.2f}: too close "
                "to call, so automatic reactions stay silent on texts like this."
            ),
            inline=False,
        )
    return embed


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def history_embed(
    rows: Sequence[StoredPrediction],
    *,
    title: str,
    page: int,
    pages: int,
    total: int,
    show_user: bool,
) -> discord.Embed:
    """One page of predictions; ``show_user`` when the rows are of several people."""
    embed = discord.Embed(title=title, colour=discord.Colour.blurple())
    if not rows:
        embed.description = "No predictions match."
        return embed
    lines = []
    for row in rows:
        when = f"<t:{int(row.created_at.timestamp())}:R>"
        where = f"<#{row.channel_id}>" if row.channel_id else "DM"
        line = (
            f"{MOOD_EMOJI[row.mood]} **{row.mood}** {row.p_positive:.2f} · {where} · {when} · "
            f"{SOURCE_NAMES[row.source]}"
        )
        if show_user:
            line += f" · <@{row.user_id}>"
        if row.text:
            line += f"\n  {snippet(row.text, 120)}"
        lines.append(line)
    embed.description = "\n".join(lines)
    embed.set_footer(text=f"page {page} of {pages} · {plural(total, 'prediction')}")
    return embed


def summary_embed(counts: Mapping[str, int], *, title: str) -> discord.Embed:
    total = sum(counts.values())
    embed = discord.Embed(title=title, colour=discord.Colour.blurple())
    if total == 0:
        embed.description = "No predictions in this period."
        return embed
    for mood in ("positive", "neutral", "negative"):
        n = counts.get(mood, 0)
        embed.add_field(name=f"{MOOD_EMOJI[mood]} {mood}", value=f"{n} ({n / total:.0%})")
    embed.set_footer(text=plural(total, "prediction"))
    return embed
