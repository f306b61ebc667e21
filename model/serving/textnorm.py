"""Chat text, rewritten into words the encoder knows, the same way in training and in serving.

Discord messages are not movie reviews. The encoder's vocabulary maps every emoji to ``[UNK]``
("I love this 😍" loses its emoji), and mentions, links and code carry no mood but many tokens.
The ``chat`` normaliser rewrites, in this order:

- fenced code blocks (```...```) and inline code (`...`) into the word ``code``: their content
  is program text, not mood, and a long block would push the message itself out of the
  encoder's token limit;
- URLs (``http://``, ``https://``, ``www.``) into ``link``;
- user, role and channel mentions (``<@id>``, ``<@!id>``, ``<@&id>``, ``<#id>``) into
  ``@user``, ``@role`` and ``#channel``; slash-command mentions ``</name:id>`` into ``/name``;
  timestamps ``<t:...>`` into ``time``;
- Discord custom emoji ``<:name:id>`` and animated ``<a:name:id>`` into their name as words
  (``<:pepe_sad:123>`` -> ``pepe sad``);
- Unicode emoji into their CLDR names (``😍`` -> ``smiling face with heart-eyes``; skin tones
  dropped; a run of the same emoji said once), by the ``emoji`` package;
- a few ASCII emoticons (``:)``, ``:(``, ``:D``, ``<3``, ...) into the same kind of words;
- spoiler bars ``||...||`` removed, the text kept; whitespace collapsed.

Everything else is left as written: case, slang, punctuation and repeated letters are the
tokenizer's business. ``none`` leaves the text untouched (artifacts from before this module).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import emoji

Normalizer = Callable[[str], str]
NORMALIZERS: tuple[str, ...] = ("none", "chat")
DEFAULT_NORMALIZER = "chat"

CODE_WORD = "code"
LINK_WORD = "link"
USER_WORD = "@user"
ROLE_WORD = "@role"
CHANNEL_WORD = "#channel"
TIME_WORD = "time"


class NormalizerError(ValueError):
    """An unknown normaliser name; the message lists the known ones."""


_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)  # an unclosed fence runs to the end
# Inline code hugs its backticks (`x`, ``a`b``): text tokenised like SST-2's, where ` and ``
# open quotes with a space after them, is left alone.
_INLINE_CODE = re.compile(
    r"``(?=\S)(?:(?!``).)*?(?<=\S)``"  # ``double``, may hold a single `
    r"|`(?=[^\s`])[^`\n]*?(?<=[^\s`])`",  # `single`
    re.DOTALL,
)
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>]*[^\s<>.,;:!?)\]'\"]", re.IGNORECASE)
_ROLE = re.compile(r"<@&\d+>")
_USER = re.compile(r"<@!?\d+>")
_CHANNEL = re.compile(r"<#\d+>")
_SLASH = re.compile(r"</([\w -]+?)(?::\d+)>")
_TIMESTAMP = re.compile(r"<t:-?\d+(?::[tTdDfFR])?>")
_CUSTOM_EMOJI = re.compile(r"<a?:(\w{1,32}):\d+>")
_SPOILER = re.compile(r"\|\|(.+?)\|\|", re.DOTALL)
_SPACES = re.compile(r"\s+")
_SKIN_TONE = re.compile(r"_?(?:light|medium-light|medium|medium-dark|dark)_skin_tone")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")

# ASCII emoticons, each only where it stands alone (space or edge on both sides), so that
# "a:b", "f(x)" or "x:D" are left alone.
_EMOTICONS = {
    ":)": "smiling face",
    ":-)": "smiling face",
    "(:": "smiling face",
    ":]": "smiling face",
    "=)": "smiling face",
    ":D": "grinning face",
    ":-D": "grinning face",
    "xD": "laughing face",
    "XD": "laughing face",
    ";)": "winking face",
    ";-)": "winking face",
    ":P": "face with tongue",
    ":p": "face with tongue",
    ":(": "sad face",
    ":-(": "sad face",
    "):": "sad face",
    ":[": "sad face",
    "=(": "sad face",
    ":'(": "crying face",
    ":/": "confused face",
    ":-/": "confused face",
    ":|": "neutral face",
    "<3": "red heart",
    "</3": "broken heart",
}
_EMOTICON = re.compile(
    r"(?<!\S)(" + "|".join(re.escape(e) for e in sorted(_EMOTICONS, key=len, reverse=True)) + r")"
    r"(?!\S)"
)


def _words(name: str) -> str:
    """An identifier as words: ``pepe_sad`` and ``PepeSad`` -> ``pepe sad``."""
    return " ".join(_CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").split()).lower()


def _emoji_name(chars: str, data: dict[str, str]) -> str:
    name = str(data.get("en", "")).strip(":")
    name = _SKIN_TONE.sub("", name)
    # keep "heart-eyes" readable as two words; drop CLDR's quotes and colons
    name = name.replace("_", " ").replace("-", " ").replace("’", "'")
    return f" {name} " if name else " "


def normalize_chat(text: str) -> str:
    """The ``chat`` normaliser (see the module's docstring)."""
    if not text:
        return text
    text = _FENCED_CODE.sub(f" {CODE_WORD} ", text)
    text = _INLINE_CODE.sub(f" {CODE_WORD} ", text)
    text = _URL.sub(f" {LINK_WORD} ", text)
    text = _ROLE.sub(f" {ROLE_WORD} ", text)
    text = _USER.sub(f" {USER_WORD} ", text)
    text = _CHANNEL.sub(f" {CHANNEL_WORD} ", text)
    text = _SLASH.sub(lambda m: f" /{m.group(1)} ", text)
    text = _TIMESTAMP.sub(f" {TIME_WORD} ", text)
    text = _CUSTOM_EMOJI.sub(lambda m: f" {_words(m.group(1))} ", text)
    text = _SPOILER.sub(r"\1", text)
    if not text.isascii():  # every emoji has a non-ASCII code point; the emoji scans are
        # 97% of this function's time on plain text (0.17 ms a message)
        text = _collapse_emoji_runs(text)
        text = emoji.replace_emoji(text, replace=_emoji_name)
    text = _EMOTICON.sub(lambda m: f" {_EMOTICONS[m.group(1)]} ", text)
    return _SPACES.sub(" ", text).strip()


def _collapse_emoji_runs(text: str) -> str:
    """A run of the same emoji (``🔥🔥🔥``, with or without spaces between) kept once."""
    out: list[str] = []
    last_end = 0
    previous: str | None = None
    for found in emoji.emoji_list(text):
        start, end, char = found["match_start"], found["match_end"], found["emoji"]
        between = text[last_end:start]
        if not (char == previous and not between.strip()):
            out.append(between)
            out.append(char)
        previous = char
        last_end = end
    out.append(text[last_end:])
    return "".join(out)


def normalize_none(text: str) -> str:
    return text


_BY_NAME: dict[str, Normalizer] = {"none": normalize_none, "chat": normalize_chat}


def get_normalizer(name: str) -> Normalizer:
    """The normaliser called ``name``; ``NormalizerError`` for a name this version lacks."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise NormalizerError(
            f"unknown text normaliser {name!r}: use one of {', '.join(NORMALIZERS)}."
        ) from None


# -- pieces: the text cut where the chat normaliser cuts it (for explain.py) -----------------------

PieceKind = Literal["word", "emoji", "emoticon", "markup"]


@dataclass(frozen=True)
class Piece:
    """One removable piece of a text: ``text[start:end]``.

    ``kind`` is ``word`` (letters and digits, with inner apostrophes and hyphens: ``don't``,
    ``heart-warming``), ``emoji`` (a Unicode emoji, or a run of the same one, which the
    normaliser says once), ``emoticon`` (``:)``, ``<3``) or ``markup`` (a code block, inline
    code, a link, a mention, a timestamp, a slash-command mention, a custom emoji). ``read_as``
    is what the chat normaliser turns it into (``@user``, ``smiling face``, ``code``); for a
    word, the word itself.
    """

    start: int
    end: int
    kind: PieceKind
    read_as: str


_MARKUP_PATTERNS = (
    _FENCED_CODE,
    _INLINE_CODE,
    _URL,
    _ROLE,
    _USER,
    _CHANNEL,
    _SLASH,
    _TIMESTAMP,
    _CUSTOM_EMOJI,
)
_WORD = re.compile(r"\w+(?:['’-]\w+)*")


def pieces(text: str) -> list[Piece]:
    """The pieces of ``text`` in order, cut where :func:`normalize_chat` cuts it: each thing
    it rewrites as a whole is one piece, however many characters or spaces it spans (a
    mention, a code block, an emoji, a run of one emoji), and so is each word elsewhere.
    Punctuation, spaces and spoiler bars belong to no piece.

    The rules run in the normaliser's order on the original text, each piece found blanked
    out (with spaces, as the normaliser pads its rewrites) before the next rule looks, so a
    link inside code is part of the code, as it is for the normaliser.
    """
    found: list[Piece] = []
    masked = text

    def take(start: int, end: int, kind: PieceKind, read_as: str) -> None:
        nonlocal masked
        found.append(Piece(start, end, kind, read_as))
        masked = masked[:start] + " " * (end - start) + masked[end:]

    for pattern in _MARKUP_PATTERNS:
        for match in list(pattern.finditer(masked)):
            take(match.start(), match.end(), "markup", normalize_chat(match[0]))
    for match in list(_SPOILER.finditer(masked)):  # the bars go; the text inside stays
        start, end = match.span()
        masked = masked[:start] + "  " + masked[start + 2 : end - 2] + "  " + masked[end:]
    run: tuple[int, int, str] | None = None  # a run of one emoji, spaces between allowed
    for item in emoji.emoji_list(masked):
        start, end, char = item["match_start"], item["match_end"], item["emoji"]
        if run is not None and run[2] == char and not masked[run[1] : start].strip():
            run = (run[0], end, char)
            continue
        if run is not None:
            take(run[0], run[1], "emoji", normalize_chat(run[2]))
        run = (start, end, char)
    if run is not None:
        take(run[0], run[1], "emoji", normalize_chat(run[2]))
    for match in list(_EMOTICON.finditer(masked)):
        take(match.start(1), match.end(1), "emoticon", _EMOTICONS[match[1]])
    for match in _WORD.finditer(masked):
        found.append(Piece(match.start(), match.end(), "word", match[0]))
    return sorted(found, key=lambda piece: piece.start)
