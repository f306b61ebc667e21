"""Messages the model cannot read: a conservative gate for text that is not English.

The encoder (all-MiniLM-L6-v2) was trained on English; a message in another language gets a
mood that means nothing. ``LanguageGate.foreign`` names the language of such a message so
that the caller can answer "not read" instead, and returns ``None`` for everything it may
read. It errs on the side of ``None``: a false "not read" on an English message is worse than
the classifier's guess on a foreign one.

The detector is ``py3langid`` (a maintained fork of langid.py: naive Bayes over byte n-grams,
its model shipped inside the wheel, nothing downloaded, deterministic), restricted to
``DETECTOR_LANGUAGES``: English, the Latin-script languages most often met in chat, and the
languages that share a non-Latin script (Cyrillic, Arabic, Chinese characters). Without the
restriction, short English slang is often taken for Nigerian Pidgin, Frisian or Tagalog.

Decision rule, on the raw message:

1. Discord markup carries no language: code blocks and inline code, links, user / role /
   channel / slash-command mentions, timestamps, custom emoji, Unicode emoji and ASCII
   emoticons are removed (``textnorm``'s patterns), spoiler bars kept as their text; the
   rest is NFKC-normalised (so fancy-font or full-width Latin reads as Latin).
2. **Script.** A letter belongs to a script (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari,
   Hangul, Thai, Chinese characters and kana, ...). Letters count as evidence of a script only
   in runs of at least ``MIN_SCRIPT_RUN`` consecutive letters of that script (combining marks
   included), so that kaomoji such as ``¯\\_(ツ)_/¯``, ``ಠ_ಠ`` or ``(ﾉ◕ヮ◕)ﾉ`` are not words.
   When one non-Latin script has at least ``MIN_SCRIPT_LETTERS`` such letters and at least
   half of all the letters in the text, the text is foreign: the encoder cannot read that
   script, however short the text. Its language comes from the script where one language owns
   it (Hangul: ``ko``, Greek: ``el``, Thai: ``th``, ...), from kana for Japanese, and otherwise
   from the detector's best language of that script (``ru`` / ``uk`` / ``bg``, ``ar`` / ``fa``
   / ``ur``, ``zh`` / ``ja``). A script this module cannot name a language for (mathematical
   symbols, syllabics used in kaomoji, ...) is left alone.
3. **Latin script.** Otherwise the text is foreign only with enough evidence and a confident
   detector: at least ``MIN_WORDS`` words (whitespace-separated, holding a letter) and
   ``MIN_LETTERS`` letters, the detector's best language is not English with probability at
   least ``MIN_CONFIDENCE``, and English has at most ``MAX_ENGLISH``. Shorter text ("lol",
   "gracias", "merci beaucoup", "Bonjour!") is answered ``None``: too little to tell from
   English chat, which borrows such words.

Measured (``scripts/language_check.py``): no message of the hand-labelled chat set and 5 of
the 48,836 English GoEmotions train+dev comments flagged; every one of the 65 foreign chat
messages in ``tests/data/foreign_chat.tsv`` caught with the right language; 0.15 to 0.25 ms a
message on one core (4,000 to 6,000 messages/s, measured while training held both cores);
about 100 MB of memory, loaded in about a second. The thresholds were chosen on GoEmotions
train and the foreign list, never on the chat set.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import emoji

from model.serving.textnorm import (
    _CHANNEL,
    _CUSTOM_EMOJI,
    _EMOTICON,
    _FENCED_CODE,
    _INLINE_CODE,
    _ROLE,
    _SLASH,
    _SPACES,
    _SPOILER,
    _TIMESTAMP,
    _URL,
    _USER,
)

ENGLISH = "en"

# Latin-script languages first, then those sharing a non-Latin script with another language.
# Languages whose script is their own (Korean, Greek, Thai, Hebrew, Hindi, ...) are named by
# their script and need no detector.
DETECTOR_LANGUAGES: tuple[str, ...] = (
    ENGLISH,
    "es", "fr", "de", "pt", "it", "nl", "pl", "tr", "id", "vi",
    "sv", "da", "no", "fi", "cs", "ro", "hu", "tl",
    "ru", "uk", "bg", "ar", "fa", "ur", "zh", "ja",
)  # fmt: skip

MIN_WORDS = 3
MIN_LETTERS = 12
MIN_CONFIDENCE = 0.5
MAX_ENGLISH = 0.05
MIN_SCRIPT_RUN = 2
MIN_SCRIPT_LETTERS = 3

LATIN = "LATIN"
CJK = "CJK"  # Chinese characters and kana, one script here: Japanese mixes them in one word

# Scripts that one language owns (among those chat is likely to see).
SCRIPT_LANGUAGE: dict[str, str] = {
    "HANGUL": "ko",
    "GREEK": "el",
    "HEBREW": "he",
    "THAI": "th",
    "DEVANAGARI": "hi",
    "BENGALI": "bn",
    "GURMUKHI": "pa",
    "GUJARATI": "gu",
    "ORIYA": "or",
    "TAMIL": "ta",
    "TELUGU": "te",
    "KANNADA": "kn",
    "MALAYALAM": "ml",
    "SINHALA": "si",
    "GEORGIAN": "ka",
    "ARMENIAN": "hy",
    "ETHIOPIC": "am",
    "LAO": "lo",
    "KHMER": "km",
    "MYANMAR": "my",
    "TIBETAN": "bo",
    "THAANA": "dv",
}
# Scripts several detector languages share: the detector picks among these.
SHARED_SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "CYRILLIC": ("ru", "uk", "bg"),
    "ARABIC": ("ar", "fa", "ur"),
    CJK: ("zh", "ja"),
}
_KANA = frozenset({"HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"})
_CJK_NAMES = frozenset({"CJK", "IDEOGRAPHIC", *_KANA})


def strip_markup(text: str) -> str:
    """The message without Discord markup and emoji, NFKC-normalised, spaces collapsed."""
    if not text:
        return ""
    text = _FENCED_CODE.sub(" ", text)
    text = _INLINE_CODE.sub(" ", text)
    text = _URL.sub(" ", text)
    for pattern in (_ROLE, _USER, _CHANNEL, _SLASH, _TIMESTAMP, _CUSTOM_EMOJI):
        text = pattern.sub(" ", text)
    text = _SPOILER.sub(r"\1", text)
    text = emoji.replace_emoji(text, replace=" ")
    text = _EMOTICON.sub(" ", text)
    text = unicodedata.normalize("NFKC", text)
    return _SPACES.sub(" ", text).strip()


@lru_cache(maxsize=4096)
def _script(char: str) -> str:
    """The script of a letter, from its Unicode name (``CJK`` for Chinese characters and kana)."""
    name = unicodedata.name(char, "")
    words = name.split()
    if not words:
        return ""
    if words[0] in ("HALFWIDTH", "FULLWIDTH") and len(words) > 1:
        words = words[1:]
    if words[0] in _CJK_NAMES:
        return CJK
    return words[0]


def _is_kana(char: str) -> bool:
    return unicodedata.name(char, "").split(" ", 1)[0] in _KANA


class _Evidence:
    """Letters, words and letters per script (in runs of ``MIN_SCRIPT_RUN``) in a text."""

    __slots__ = ("by_script", "kana", "letters", "words")

    def __init__(self, text: str) -> None:
        self.letters = 0
        self.words = sum(1 for word in text.split() if any(c.isalpha() for c in word))
        self.kana = False
        self.by_script: Counter[str] = Counter()
        run_script, run_letters = "", 0
        for char in text:
            if char.isalpha():
                self.letters += 1
                script = _script(char)
                if script == run_script:
                    run_letters += 1
                else:
                    self._close(run_script, run_letters)
                    run_script, run_letters = script, 1
                if script == CJK and not self.kana:
                    self.kana = _is_kana(char)
            elif unicodedata.category(char).startswith("M") and run_script:
                continue  # a combining mark (Devanagari, Thai vowels) stays inside its word
            else:
                self._close(run_script, run_letters)
                run_script, run_letters = "", 0
        self._close(run_script, run_letters)

    def _close(self, script: str, letters: int) -> None:
        if script and letters >= MIN_SCRIPT_RUN:
            self.by_script[script] += letters

    def foreign_script(self) -> str | None:
        """The non-Latin script that dominates the text, if one does."""
        best = [(n, s) for s, n in self.by_script.items() if s != LATIN]
        if not best:
            return None
        letters, script = max(best)
        if letters >= MIN_SCRIPT_LETTERS and 2 * letters >= self.letters:
            return script
        return None


class LanguageGate:
    """Which messages are in a language the encoder cannot read (see the module docstring).

    The detector is loaded once, on first use or by ``load()``; after that the gate holds no
    mutable state, so one instance serves any number of threads.
    """

    def __init__(self, languages: Sequence[str] = DETECTOR_LANGUAGES) -> None:
        if ENGLISH not in languages:
            raise ValueError("the detector's languages must include English ('en')")
        self._languages = tuple(dict.fromkeys(languages))
        self._identifier: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the detector now (otherwise the first call to ``foreign`` does)."""
        self._detector()

    def _detector(self) -> Any:
        identifier = self._identifier
        if identifier is None:
            with self._lock:
                if self._identifier is None:
                    from py3langid.langid import (  # type: ignore[import-untyped]
                        MODEL_FILE,
                        LanguageIdentifier,
                    )

                    loaded = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                    loaded.set_languages(list(self._languages))
                    self._identifier = loaded
                identifier = self._identifier
        return identifier

    def _rank(self, text: str) -> list[tuple[str, float]]:
        return [(str(lang), float(p)) for lang, p in self._detector().rank(text)]

    def foreign(self, texts: Sequence[str]) -> list[str | None]:
        """Per text: ``None`` when it may be read (English, or too little to tell), else the
        ISO 639-1 code of its language (``"fr"``)."""
        return [self._foreign_one(text) for text in texts]

    def _foreign_one(self, text: str) -> str | None:
        text = strip_markup(text)
        evidence = _Evidence(text)
        if evidence.letters == 0:
            return None
        script = evidence.foreign_script()
        if script is not None:
            return self._script_language(script, text, evidence)
        if evidence.words < MIN_WORDS or evidence.letters < MIN_LETTERS:
            return None
        ranks = self._rank(text)
        best, confidence = ranks[0]
        english = dict(ranks).get(ENGLISH, 0.0)
        if best != ENGLISH and confidence >= MIN_CONFIDENCE and english <= MAX_ENGLISH:
            return best
        return None

    def _script_language(self, script: str, text: str, evidence: _Evidence) -> str | None:
        if script in SCRIPT_LANGUAGE:
            return SCRIPT_LANGUAGE[script]
        if script == CJK and evidence.kana:
            return "ja"
        candidates = [
            lang for lang in SHARED_SCRIPT_LANGUAGES.get(script, ()) if lang in self._languages
        ]
        if not candidates:
            return None
        for lang, _ in self._rank(text):
            if lang in candidates:
                return lang
        return candidates[0]
