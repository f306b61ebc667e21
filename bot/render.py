"""Turning predictions and history rows into Discord embeds. Pure functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import discord

from bot.alerts import BASELINE_DAYS, AlertNotice, ResolvedNotice, WatchRule, jump_link
from bot.storage import Mood, PredictionRecord, StoredPrediction
from bot.storage.alerts import AlertConfig
from model import Explanation, Prediction, threshold

MOOD_EMOJI = {"positive": "😊", "negative": "😞", "neutral": "😐"}
MOOD_COLOUR = {
    "positive": discord.Colour.green(),
    "negative": discord.Colour.red(),
    "neutral": discord.Colour.light_grey(),
}
SOURCE_NAMES = {"auto": "reaction", "command": "/sentiment", "context_menu": "menu"}
BAR_CELLS = 10
# The order of a three-way model's probabilities (model.Prediction.probabilities).
THREE_WAY: tuple[Mood, ...] = ("negative", "neutral", "positive")
# Names of the languages people most often write in, for "this looks like French (fr)"; any
# other ISO 639-1 code is shown as it is.
LANGUAGE_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan",
    "cs": "Czech", "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek",
    "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "gl": "Galician", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian", "is": "Icelandic",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "la": "Latin", "lt": "Lithuanian",
    "lv": "Latvian", "ms": "Malay", "nb": "Norwegian", "nl": "Dutch", "no": "Norwegian",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sl": "Slovenian", "sq": "Albanian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian",
    "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip
NOTHING_TO_READ = (
    "The text has no words the model knows (it is empty, or only emoji, symbols or invisible "
    "characters): there is no mood to tell."
)
# Every character Discord's markdown reads anywhere in a line; a backslash makes each one
# literal. URLs are left whole (Discord formats nothing inside them), as discord.py does.
_MARKUP = re.compile(r"[\\*_~`|>\[\]]")
_URL = re.compile(r"<[^: >]+:/[^ >]+>|(?:https?|steam)://[^\s<]+[^<.,:;\"'\]\s]")
WHY_TITLE = "Words that moved it most"
WHY_TOP = 3  # words shown
WHY_AT_LEAST = 0.005  # a smaller push would show as 0.00
WHY_WORD_CHARS = 40  # a longer word is cut with an ellipsis


def confidence_bar(confidence: float) -> str:
    """``███████░░░ 72%``: the probability of the predicted label."""
    filled = max(0, min(BAR_CELLS, round(confidence * BAR_CELLS)))
    return f"{'█' * filled}{'░' * (BAR_CELLS - filled)} {confidence:.0%}"


def probability_bars(probabilities: Sequence[float]) -> str:
    """A three-way model's P(negative), P(neutral), P(positive) as aligned bars, one a line
    (``negative ███░░░░░░░  12%``); for a code block, where the columns line up."""
    lines = []
    for mood, p in zip(THREE_WAY, probabilities, strict=True):
        filled = max(0, min(BAR_CELLS, round(p * BAR_CELLS)))
        lines.append(f"{mood:<8} {'█' * filled}{'░' * (BAR_CELLS - filled)} {p:>4.0%}")
    return "\n".join(lines)


def language_name(code: str) -> str:
    """``French (fr)`` for a code in :data:`LANGUAGE_NAMES`, else the code itself."""
    name = LANGUAGE_NAMES.get(code.lower())
    return f"{name} ({code})" if name else code


def unread_line(unread: str) -> str:
    """Why the model did not read a text (``model.Prediction.unread``), in one sentence."""
    if unread.startswith("language:"):
        code = escape_markup(unread.removeprefix("language:"))
        name = LANGUAGE_NAMES.get(code.lower())
        what = f"{name} ({code})" if name else f"another language ({code})"
        return f"Not read: this looks like {what}, and the model reads English only."
    return f"Not read: {NOTHING_TO_READ[0].lower()}{NOTHING_TO_READ[1:]}"


def why_silent(row: PredictionRecord, band: tuple[float, float]) -> str:
    """Why automatic reactions stay silent on a prediction whose mood is neutral, in words."""
    if row.unread is not None:
        line = unread_line(row.unread)
        return line[0].lower() + line[1:]
    probabilities = row.probabilities
    if probabilities is None:
        if row.label == "neutral":
            return "nothing to read"
        low, high = band
        return (
            f"neutral, P(positive) {row.p_positive:.2f} lies inside the band "
            f"{low:.2f}..{high:.2f}, too close to call"
        )
    if row.label == "neutral":
        return f"neutral, P(neutral) {probabilities[1]:.2f}"
    p = probabilities[THREE_WAY.index(row.label)]
    return (
        f"it leans {row.label}, but P({row.label}) {p:.2f} is below the "
        f"{threshold(row.label, band):.2f} a reaction needs: not confident enough"
    )


def mood_probability(row: PredictionRecord) -> str:
    """``P(positive) 0.91``: a three-way row's probability of its mood, else P(positive)."""
    probabilities = row.probabilities
    if probabilities is None or not row.read:
        return f"P(positive) {row.p_positive:.2f}"
    return f"P({row.mood}) {probabilities[THREE_WAY.index(row.mood)]:.2f}"


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


def prediction_embed(
    text: str,
    prediction: Prediction,
    band: tuple[float, float],
    explanation: Explanation | None = None,
) -> discord.Embed:
    """The answer to /sentiment and to the context menu.

    A three-way model's answer shows its three probabilities as bars, with the mood in the
    title; a binary model's, the confidence of its label and P(positive). A text in another
    language is answered in one line; one with nothing to read says so. With an
    ``explanation``, a read text's answer ends with the words that moved its mood most.
    """
    embed = _prediction_embed(text, prediction, band)
    if explanation is not None and prediction.read and explanation.unread is None:
        embed.add_field(name=WHY_TITLE, value=why_lines(explanation), inline=False)
    return embed


def why_lines(explanation: Explanation, top: int = WHY_TOP) -> str:
    """``**hate** pushed it negative by 0.42``, one line per word, the ``top`` words that moved
    the mood most (model/serving/explain.py says what that means); what was not tried, if
    anything."""
    shown = explanation.top(top, at_least=WHY_AT_LEAST)
    lines = []
    for effect in shown:
        word = (
            effect.word
            if len(effect.word) <= WHY_WORD_CHARS
            else effect.word[: WHY_WORD_CHARS - 1] + "…"
        )
        times = f" (×{effect.count})" if effect.count > 1 else ""
        lines.append(f"**{_plain_word(word)}**{times} pushed it {effect.toward} by {effect.by:.2f}")
    if not shown:
        lines.append(
            "No single word moved it by 0.01 or more."
            if explanation.words
            else "No words to weigh (only punctuation or symbols)."
        )
    if explanation.skipped:
        tried, skipped = explanation.max_words, explanation.skipped
        lines.append(
            f"Only the first {plural(tried, 'word')} {'was' if tried == 1 else 'were'} tried; "
            f"{plural(skipped, 'more word')} {'was' if skipped == 1 else 'were'} not."
        )
    return "\n".join(lines)


def _plain_word(word: str) -> str:
    """A word safe inside bold: markup characters made literal, mentions defused."""
    return discord.utils.escape_mentions(escape_markup(" ".join(word.split())))


def _prediction_embed(
    text: str, prediction: Prediction, band: tuple[float, float]
) -> discord.Embed:
    if prediction.unread is not None and prediction.unread.startswith("language:"):
        return discord.Embed(
            description=f"{MOOD_EMOJI['neutral']} {unread_line(prediction.unread)}",
            colour=MOOD_COLOUR["neutral"],
        )
    if not prediction.read or (prediction.probabilities is None and prediction.label == "neutral"):
        return discord.Embed(
            title=f"{MOOD_EMOJI['neutral']} Nothing to read",
            description=NOTHING_TO_READ,
            colour=MOOD_COLOUR["neutral"],
        )
    quote = f"> {snippet(text, 300)}" if text.strip() else None
    if prediction.probabilities is not None:
        return _three_way_embed(quote, prediction, band)
    label = prediction.label
    embed = discord.Embed(
        title=f"{MOOD_EMOJI[label]} {label.capitalize()}",
        colour=MOOD_COLOUR[prediction.mood],
        description=quote,
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


def _three_way_embed(
    quote: str | None, prediction: Prediction, band: tuple[float, float]
) -> discord.Embed:
    assert prediction.probabilities is not None
    mood, label = prediction.mood, prediction.label
    embed = discord.Embed(
        title=f"{MOOD_EMOJI[mood]} {mood.capitalize()}",
        colour=MOOD_COLOUR[mood],
        description=quote,
    )
    embed.add_field(
        name="Probabilities",
        value=f"```\n{probability_bars(prediction.probabilities)}\n```",
        inline=False,
    )
    if mood != label:  # a polar label the bot is not sure enough of to react
        p, needed = prediction.probability(label), threshold(label, band)
        embed.add_field(
            name="Not confident enough",
            value=(
                f"It leans {label}, but P({label}) {p:.2f} is below the {needed:.2f} a "
                "reaction needs, so automatic reactions stay silent on texts like this."
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
        line = f"{history_verdict(row)} · {where} · {when} · {SOURCE_NAMES[row.source]}"
        if show_user:
            line += f" · <@{row.user_id}>"
        if row.text:
            line += f"\n  {snippet(row.text, 120)}"
        lines.append(line)
    embed.description = "\n".join(lines)
    embed.set_footer(text=f"page {page} of {pages} · {plural(total, 'prediction')}")
    return embed


def history_verdict(row: StoredPrediction) -> str:
    """What a history line says of one prediction: ``😊 **positive** 0.91``.

    The number is P(positive) for a binary model's row, the probability of the label for a
    three-way model's; ``not read`` for a text the model did not read.
    """
    if not row.read:
        reason = row.unread or ""
        language = reason.removeprefix("language:") if reason.startswith("language:") else None
        note = f" ({escape_markup(language_name(language))})" if language else ""
        return f"{MOOD_EMOJI['neutral']} **not read**{note}"
    mood = row.mood
    probabilities = row.probabilities
    if probabilities is None:
        return f"{MOOD_EMOJI[mood]} **{mood}** {row.p_positive:.2f}"
    p = probabilities[THREE_WAY.index(row.label)]
    if mood != row.label:
        return f"{MOOD_EMOJI[mood]} **{mood}** (leans {row.label} {p:.2f})"
    return f"{MOOD_EMOJI[mood]} **{mood}** {p:.2f}"


def summary_embed(counts: Mapping[str, int], *, title: str) -> discord.Embed:
    """Counts and shares of the three moods; texts the model did not read count apart."""
    moods = ("positive", "neutral", "negative")
    total = sum(counts.get(mood, 0) for mood in moods)
    unread = counts.get("unread", 0)
    not_read = f"{plural(unread, 'message')} not read" if unread else ""
    embed = discord.Embed(title=title, colour=discord.Colour.blurple())
    if total == 0:
        embed.description = "No predictions in this period." + (
            f" ({not_read}: no words the model knows, or another language)" if unread else ""
        )
        return embed
    for mood in moods:
        n = counts.get(mood, 0)
        embed.add_field(name=f"{MOOD_EMOJI[mood]} {mood}", value=f"{n} ({n / total:.0%})")
    embed.set_footer(text=" · ".join(filter(None, [plural(total, "prediction"), not_read])))
    return embed


# What each list of a member's data export is called in the summary line (one, several); a
# list not named here is called by its name in the file.
_EXPORT_WORDS: Mapping[str, tuple[str, str]] = {
    "predictions": ("prediction you made", "predictions you made"),
    "predictions_by_others": (
        "prediction by others on your messages",
        "predictions by others on your messages",
    ),
    "corrections": ("correction you made", "corrections you made"),
    "corrections_by_others": (
        "correction by moderators on your messages",
        "corrections by moderators on your messages",
    ),
}


def member_data_line(
    counts: Mapping[str, int], *, opted_out: bool, where: str, attached: str | None
) -> str:
    """The one line that comes with ``/my-data``: rows per list, the opt-out, the file."""
    parts = []
    for name, n in counts.items():
        if name == "opt_out":
            continue
        words = name.replace("_", " ")
        one, many = _EXPORT_WORDS.get(name, (words.removesuffix("s"), words))
        parts.append(f"{n} {one if n == 1 else many}")
    state = "opted out" if opted_out else "not opted out"
    what = f"attached: `{attached}`" if attached else "nothing attached"
    return (
        f"Everything the bot holds about you in {where}: {', '.join(parts)}; {state}; {what}. "
        "`/forget-me` erases it."
    )


# -- mood alerts -------------------------------------------------------------------------------


def _share(negative: int, read: int) -> str:
    return f"{negative / read:.0%}" if read else "-"


def alert_embed(notice: AlertNotice) -> discord.Embed:
    """A mood alert: the channel, its negative share against its usual level, jump links to
    the most negative messages (with their text only where the guild stores text)."""
    rule, now, usual = notice.rule, notice.figures, notice.usual
    embed = discord.Embed(
        title="⚠️ Mood alert",
        description=(
            f"<#{notice.channel_id}> is turning sour: **{_share(now.negative, now.read)}** "
            f"negative ({now.negative} of {plural(now.read, 'message')} read in the last "
            f"{plural(rule.window_minutes, 'minute')}); the alert threshold is "
            f"{rule.threshold:.0%}."
        ),
        colour=discord.Colour.orange(),
        timestamp=notice.at,
    )
    embed.add_field(
        name="Usual level",
        value=(
            f"{_share(usual.negative, usual.read)} negative over the previous "
            f"{plural(BASELINE_DAYS, 'day')} ({plural(usual.read, 'message')})"
            if usual.read
            else f"no messages read in the previous {plural(BASELINE_DAYS, 'day')}"
        ),
        inline=False,
    )
    lines = []
    for n, message in enumerate(notice.messages, 1):
        link = jump_link(notice.guild_id, notice.channel_id, message.message_id)
        line = f"{n}. [message]({link}) · negative {message.negativity:.2f}"
        if message.text:
            line += f"\n> {snippet(message.text, 150)}"
        lines.append(line)
    embed.add_field(name="Most negative", value="\n".join(lines) or "none to link", inline=False)
    footer = (
        f"Resolved when below {rule.resolve_below:.0%}; at most one alert per "
        f"{plural(rule.cooldown_minutes, 'minute')} for this channel."
    )
    if notice.last_before_cap:
        footer += (
            f" This server's last alert this hour (cap {notice.hourly_cap}): further ones "
            "are held back until the hour is over."
        )
    embed.set_footer(text=footer)
    return embed


def resolved_line(notice: ResolvedNotice) -> str:
    """The line posted when an alerting channel calms down (or goes quiet)."""
    figures, rule = notice.figures, notice.rule
    minutes = plural(rule.window_minutes, "minute")
    if notice.quiet:
        what = f"has gone quiet ({plural(figures.read, 'message')} read in the last {minutes})"
    else:
        what = (
            f"has calmed: {_share(figures.negative, figures.read)} negative over the last "
            f"{minutes}, below {rule.resolve_below:.0%}"
        )
    line = f"✅ Resolved: <#{notice.channel_id}> {what}."
    if notice.alert_message_id is not None:
        link = jump_link(notice.guild_id, notice.alert_channel_id, notice.alert_message_id)
        line += f" ([alert]({link}))"
    return line


def watch_rule_text(rule: WatchRule) -> str:
    """``alert at 50% negative over 10 minutes (at least 10 messages), resolved below 35%,
    at most one per 60 minutes``."""
    return (
        f"alert at {rule.threshold:.0%} negative over {plural(rule.window_minutes, 'minute')} "
        f"(at least {plural(rule.min_messages, 'message')}), resolved below "
        f"{rule.resolve_below:.0%}, at most one per {plural(rule.cooldown_minutes, 'minute')}"
    )


def alert_settings_embed(config: AlertConfig, note: str) -> discord.Embed:
    """/sentiment-admin alerts: where alerts go, the caps, each watched channel and its state."""
    embed = discord.Embed(
        title="Mood alerts", description=note or None, colour=discord.Colour.blurple()
    )
    where = (
        f"<#{config.alert_channel_id}>"
        if config.alert_channel_id is not None
        else "none: alerts are not posted (set one with /sentiment-admin alerts channel)"
    )
    embed.add_field(name="Alert channel", value=where, inline=False)
    embed.add_field(
        name="Hourly cap", value=f"at most {plural(config.hourly_cap, 'alert')} an hour"
    )
    lines = []
    for channel_id, watch in sorted(config.watches.items()):
        state = watch.state
        since = (
            f" · **alerting** since <t:{int(state.last_alert_at.timestamp())}:R>"
            if state.alerting and state.last_alert_at is not None
            else ""
        )
        lines.append(f"<#{channel_id}>: {watch_rule_text(watch.rule)}{since}")
    embed.add_field(
        name="Watched channels",
        value="\n".join(lines)[:1024] or "none (add one with /sentiment-admin alerts watch)",
        inline=False,
    )
    return embed
