"""model/serving/explain.py: the words that moved the mood most, on the real bundled models.

"Moved the mood" (see the module): removing a word changes each mood's probability by
P(mood | text) - P(mood | text without it); the word pushed the text toward the mood it raised
most, by that rise. Checked here against a brute-force recomputation, one text per encoder
call, with the variants built independently of the module; and the cost bounds: one batched
call whatever the length, at most MAX_WORDS words tried, nothing for a text the model did not
read.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from model import MOODS, Prediction, SentimentClassifier, default_artifact_path, explain
from model.serving.explain import MAX_WORDS, Explanation, WordEffect, without, words
from model.serving.textnorm import pieces

# ------------------------------------------------------------------------------ words (no model)


def cut(text: str) -> list[tuple[str, str]]:
    return [(text[p.start : p.end], p.kind) for p in pieces(text)]


def test_pieces_keep_what_the_normaliser_rewrites_whole() -> None:
    text = "I love this 😍😍 <@123> so much :) ||no :(|| see https://x.com/a?b `x = 1` ok"
    assert cut(text) == [
        ("I", "word"),
        ("love", "word"),
        ("this", "word"),
        ("😍😍", "emoji"),  # a run of one emoji is said once: one piece
        ("<@123>", "markup"),
        ("so", "word"),
        ("much", "word"),
        (":)", "emoticon"),
        ("no", "word"),  # spoiler bars are no piece; the text inside is
        (":(", "emoticon"),
        ("see", "word"),
        ("https://x.com/a?b", "markup"),
        ("`x = 1`", "markup"),  # inline code, spaces and all
        ("ok", "word"),
    ]


def test_pieces_inside_code_belong_to_the_code() -> None:
    text = "look ```py\nx = 'https://x.com' :) 😍\n``` don't heart-warming"
    assert cut(text) == [
        ("look", "word"),
        ("```py\nx = 'https://x.com' :) 😍\n```", "markup"),
        ("don't", "word"),  # inner apostrophes and hyphens stay in the word
        ("heart-warming", "word"),
    ]


def test_words_the_model_reads_alike_are_one_word() -> None:
    found = words("Bad food, bad <@1> and <@!2> 🔥🔥🔥 great😍 <:pepe_sad:812345678901234567>")
    assert [(w.shown, len(w.spans)) for w in found] == [
        ("Bad", 2),  # case aside
        ("food", 1),
        ("@user", 2),  # two mentions: the model reads both as @user
        ("and", 1),
        ("🔥", 1),  # an emoji shown as itself, a run of one emoji once
        ("great", 1),
        ("😍", 1),
        ("pepe sad", 1),  # markup shown as the model reads it
    ]


def test_a_word_is_left_out_everywhere_without_fusing_its_neighbours() -> None:
    text = "Bad food, bad great😍love"
    (bad, _, _, emoji, _) = words(text)
    assert " ".join(without(text, bad.spans).split()) == "food, great😍love"
    assert without(text, emoji.spans) == "Bad food, bad great love"


def test_top_skips_words_that_moved_nothing() -> None:
    effects = (
        WordEffect("hate", 1, (0.42, -0.40, -0.02), 1),
        WordEffect("the", 1, (0.0, 0.0, 0.0), 0),
    )
    explanation = Explanation(effects, (0.9, 0.05, 0.05))
    (top,) = explanation.top(3)
    assert (top.word, top.toward, top.by) == ("hate", "negative", pytest.approx(0.42))
    assert effects[1].toward is None and effects[1].by == 0.0


# ------------------------------------------------------------------------------ the real models


@pytest.fixture(scope="module")
def classifier() -> SentimentClassifier:
    return SentimentClassifier.load()


@pytest.fixture(scope="module")
def binary() -> SentimentClassifier:
    """The bundled binary model (frozen encoder, SST-2 + chat): no neutral."""
    return SentimentClassifier.load(
        default_artifact_path().with_name("frozen.safetensors"), language_gate=False
    )


def mood_probabilities(classifier: SentimentClassifier, text: str) -> np.ndarray:
    """P(negative), P(neutral), P(positive) of one text, in a call of its own."""
    row = classifier.class_probabilities(classifier.encoder.encode([text]))[0]
    out = np.zeros(3)
    for label, p in zip(classifier.artifact.labels, row, strict=True):
        out[MOODS.index(label)] = p
    return out


def brute_force(classifier: SentimentClassifier, text: str) -> dict[str, np.ndarray]:
    """For each distinct word of a text of plain words and spaces, the change of every mood's
    probability when it is left out, one encoder call per variant."""
    base = mood_probabilities(classifier, text)
    out = {}
    for word in dict.fromkeys(w.casefold() for w in text.split()):
        rest = " ".join(w for w in text.split() if w.casefold() != word)
        out[word] = base - mood_probabilities(classifier, rest)
    return out


def test_hate_pushes_negative_and_is_the_top_word(classifier: SentimentClassifier) -> None:
    explanation = explain(classifier, "I hate this")
    top = explanation.top(3)
    assert top[0].word == "hate" and top[0].toward == "negative"
    assert top[0].by > 0.3
    assert all(w.by <= top[0].by / 3 for w in explanation.words[1:])
    assert explanation.probabilities is not None
    assert MOODS[int(np.argmax(explanation.probabilities))] == "negative"


@pytest.mark.parametrize(
    "text",
    [
        "I hate this",
        "the food was great but the service was awful",
        "thanks so much you are the best",
        "ok see you tomorrow then",
    ],
)
def test_the_top_words_are_those_whose_removal_moves_the_probability_most(
    classifier: SentimentClassifier, text: str
) -> None:
    expected = brute_force(classifier, text)
    explanation = explain(classifier, text)
    assert len(explanation.words) == len(expected) and explanation.skipped == 0
    for effect in explanation.words:
        assert effect.change == pytest.approx(expected[effect.word.casefold()], abs=1e-3)
        assert sum(effect.change) == pytest.approx(0.0, abs=1e-6)  # probabilities sum to 1
        assert effect.toward == MOODS[int(np.argmax(expected[effect.word.casefold()]))]
    # ranked by the largest rise of any mood's probability, the brute force's order
    rises = {word: float(change.max()) for word, change in expected.items()}
    ranked = [w.word.casefold() for w in explanation.words]
    assert all(rises[a] >= rises[b] - 1e-3 for a, b in pairwise(ranked))
    assert ranked[0] == max(rises, key=rises.__getitem__)


def test_binary_model_explains_p_positive(binary: SentimentClassifier) -> None:
    """For a binary model a word's push is the change in p_positive: toward positive by d when
    leaving it out lowers p_positive by d, toward negative when it raises it."""
    text = "what a wonderful day but my phone broke"
    base = binary.predict(text).p_positive
    explanation = explain(binary, text)
    assert explanation.probabilities is not None and explanation.probabilities[1] == 0.0
    seen = set()
    for effect in explanation.words:
        rest = " ".join(w for w in text.split() if w != effect.word)
        change = base - binary.predict(rest).p_positive
        assert effect.by == pytest.approx(abs(change), abs=1e-3)
        if abs(change) > 1e-3:
            assert effect.toward == ("positive" if change > 0 else "negative")
            seen.add(effect.toward)
    assert seen == {"positive", "negative"}  # "wonderful" one way, "broke" the other
    assert explanation.words[0].word in {"wonderful", "broke"}


def test_one_batched_call_and_a_cap_on_the_words(classifier: SentimentClassifier) -> None:
    text = " ".join(f"word{i}" for i in range(MAX_WORDS + 12)) + " I hate this"
    prediction = classifier.predict(text)
    calls = classifier.encoder.calls
    explanation = explain(classifier, text, prediction=prediction)
    assert classifier.encoder.calls == calls + 1  # the text and every variant: one call
    assert len(explanation.words) == MAX_WORDS
    assert explanation.skipped == 15  # the 12 words past the cap and "I hate this"
    assert explanation.max_words == MAX_WORDS
    assert {w.word for w in explanation.words} == {f"word{i}" for i in range(MAX_WORDS)}

    short = explain(classifier, text, prediction=prediction, max_words=5)
    assert len(short.words) == 5 and short.skipped == MAX_WORDS + 10
    with pytest.raises(ValueError, match="max_words must be at least 1"):
        explain(classifier, text, max_words=0)


@pytest.mark.parametrize(
    ("text", "unread"),
    [("", "empty"), ("   ", "empty"), ("je ne sais pas quoi faire de ma vie", "language:fr")],
)
def test_text_the_model_did_not_read_gets_no_explanation(
    classifier: SentimentClassifier, text: str, unread: str
) -> None:
    prediction = classifier.predict(text)
    assert prediction.unread == unread
    calls = classifier.encoder.calls
    explanation = explain(classifier, text, prediction=prediction)
    assert classifier.encoder.calls == calls  # the model was not run
    assert explanation.unread == unread
    assert explanation.words == () and explanation.probabilities is None


def test_emoji_and_mentions_are_words_of_their_own(classifier: SentimentClassifier) -> None:
    explanation = explain(classifier, "thanks <@123> this is great 😍")
    assert {w.word for w in explanation.words} == {"thanks", "@user", "this", "is", "great", "😍"}


def test_a_message_of_only_punctuation_has_no_words(classifier: SentimentClassifier) -> None:
    prediction = Prediction("neutral", 0.5, True, probabilities=(0.1, 0.8, 0.1))
    explanation = explain(classifier, "?!", prediction=prediction)
    assert explanation.words == () and explanation.skipped == 0
    assert explanation.probabilities is not None  # the text itself was still scored
