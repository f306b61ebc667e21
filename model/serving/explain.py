"""Why a text got its mood: the words that moved it most, by leaving each one out.

:func:`explain` cuts the text into words where the chat normaliser cuts it (a mention, a code
block, an emoji or a run of one emoji is one word: see :func:`model.serving.textnorm.pieces`),
builds the text once without each word, and scores the text and all those variants in ONE batched
encoder call. A word removed is removed everywhere it occurs (case aside: "Bad ... bad"), as the
normaliser says a run of one emoji once: leaving one copy in would let it carry the mood alone,
and a list of the top words should not name the same word twice.

What "moved the mood" means. For each word, ``change`` is P(mood | text) - P(mood | text
without the word) for each mood (negative, neutral, positive), so the changes sum to zero. The
word pushed the text toward the mood whose probability it raised most (``toward``), ``by``
that rise; words are ranked by it. For a binary model (no neutral), that is exactly the change
in ``p_positive``: toward positive by d when removing the word lowers ``p_positive`` by d,
toward negative by d when it raises it by d. Chosen over two alternatives:

- the change in the probability of the predicted mood only: it cannot say where a word that
  pulled against the answer pushed, and it is blind to words that pushed toward a third mood;
- P(positive) - P(negative): blind to neutral, the chat model's most common answer, so the
  words that made a message neutral ("lol", a question) would show no effect at all.

The rise of one mood's probability reads on the same scale as the probabilities the answer
shows ("**hate** pushed it negative by 0.42": without "hate", P(negative) is 0.42 lower).

The cost is bounded: only the first ``max_words`` distinct words are tried (the rest are
counted in ``skipped``), so a long message costs at most ``max_words + 1`` texts in one call. A
text the model did not read (``Prediction.unread``: empty, no known token, another language)
gets no explanation. Knows nothing of Discord.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import emoji
import numpy as np

from model.serving.classifier import Prediction
from model.serving.moods import MOODS, Mood
from model.serving.textnorm import pieces

if TYPE_CHECKING:
    from model.serving.classifier import SentimentClassifier

__all__ = ["MAX_WORDS", "Explanation", "Word", "WordEffect", "explain", "without", "words"]

MAX_WORDS = 40  # distinct words tried per text: at most MAX_WORDS + 1 texts in the one call
NO_CHANGE = 1e-9  # a rise this small is rounding, not a push


@dataclass(frozen=True)
class WordEffect:
    """What removing one word (every occurrence of it) did to the probabilities.

    ``word`` is how to show it: as written (an emoji as itself), markup as the chat
    normaliser reads it (``@user``, ``link``, ``code``). ``count`` is how many times it occurs.
    ``change`` holds P(mood | text) - P(mood | text without it) for negative, neutral,
    positive. ``toward`` is the mood whose probability it raised most, ``by`` that rise
    (``toward`` is None and ``by`` 0 when it raised none).
    """

    word: str
    count: int
    change: tuple[float, float, float]
    position: int  # index of the word among the text's distinct words, first occurrence

    @property
    def toward(self) -> Mood | None:
        best = int(np.argmax(self.change))
        return MOODS[best] if self.change[best] > NO_CHANGE else None

    @property
    def by(self) -> float:
        return max(0.0, max(self.change))


@dataclass(frozen=True)
class Explanation:
    """The words of a text, those that moved its mood most first.

    ``words`` holds every word tried, ranked by ``by`` (largest first; ties in text order).
    ``probabilities`` are P(negative), P(neutral), P(positive) of the whole text as scored in
    the same call (a binary model's neutral is 0). ``skipped`` counts the distinct words past
    ``max_words`` that were not tried. ``unread`` is the prediction's reason when the model did
    not read the text (then nothing was tried).
    """

    words: tuple[WordEffect, ...]
    probabilities: tuple[float, float, float] | None
    skipped: int = 0
    max_words: int = MAX_WORDS
    unread: str | None = None

    def top(self, n: int = 3, *, at_least: float = 0.0) -> tuple[WordEffect, ...]:
        """The ``n`` words that moved the mood most, each by more than ``at_least``."""
        return tuple(w for w in self.words if w.by > max(at_least, NO_CHANGE))[:n]


@dataclass(frozen=True)
class Word:
    """One distinct word of a text: ``key`` (what the model reads, case aside), ``shown`` (how
    an answer names it) and the ``spans`` of its every occurrence."""

    key: str
    shown: str
    spans: tuple[tuple[int, int], ...]


def words(text: str, *, chat: bool = True) -> list[Word]:
    """The distinct words of ``text`` in order of first occurrence, each with its spans.

    Words the model reads the same way are one word: the same word in any case, two mentions
    of different users (both ``@user``). ``chat``: the text goes through the chat normaliser
    (else markup is shown as written)."""
    found: dict[str, Word] = {}
    for piece in pieces(text):
        written = text[piece.start : piece.end]
        key = (piece.read_as if chat else written).casefold()
        if piece.kind == "emoji":  # a run of one emoji shown once, as the model reads it
            written = emoji.emoji_list(written)[0]["emoji"]
        shown = piece.read_as if chat and piece.kind == "markup" else written
        span = (piece.start, piece.end)
        old = found.get(key)  # shown as it first occurs
        found[key] = Word(key, old.shown, (*old.spans, span)) if old else Word(key, shown, (span,))
    return list(found.values())


def without(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    """``text`` with each span replaced by a space (so its neighbours do not fuse)."""
    out, last = [], 0
    for start, end in sorted(spans):
        out += [text[last:start], " "]
        last = end
    out.append(text[last:])
    return "".join(out)


def explain(
    classifier: SentimentClassifier,
    text: str,
    *,
    prediction: Prediction | None = None,
    max_words: int = MAX_WORDS,
) -> Explanation:
    """Leave-one-word-out for ``text`` (see the module's docstring), in one encoder call.

    ``prediction`` is the classifier's answer for ``text`` when the caller already has it (it
    tells whether the model read the text); without it, the classifier is asked first.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    if prediction is None:
        prediction = classifier.predict(text)
    if not prediction.read:
        return Explanation((), None, unread=prediction.unread, max_words=max_words)
    chat = classifier.encoder.spec.text_normalizer == "chat"
    every = words(text, chat=chat)
    tried, skipped = every[:max_words], len(every) - min(len(every), max_words)
    variants = [text] + [without(text, w.spans) for w in tried]
    encoder = classifier.encoder
    rows = classifier.class_probabilities(encoder.encode_ids(encoder.tokenize(variants)))
    labels = list(classifier.artifact.labels)
    by_mood = np.zeros((len(variants), len(MOODS)), dtype=np.float64)
    for column, label in enumerate(labels):
        by_mood[:, MOODS.index(label)] = rows[:, column]
    base = by_mood[0]
    effects = []
    for position, (word, row) in enumerate(zip(tried, by_mood[1:], strict=True)):
        change = base - row
        effects.append(
            WordEffect(
                word=word.shown,
                count=len(word.spans),
                change=(float(change[0]), float(change[1]), float(change[2])),
                position=position,
            )
        )
    effects.sort(key=lambda e: (-e.by, e.position))
    probabilities = (float(base[0]), float(base[1]), float(base[2]))
    return Explanation(tuple(effects), probabilities, skipped=skipped, max_words=max_words)
