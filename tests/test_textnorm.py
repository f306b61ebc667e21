"""Chat text normalisation: each emoji form, mentions, URLs, code; the same rewrite in training
and serving (it lives in the encoder's tokenize, which both use)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.serving.encoder import Encoder, EncoderError
from model.serving.textnorm import NORMALIZERS, NormalizerError, get_normalizer, normalize_chat


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Unicode emoji become their names, words the tokenizer knows
        ("I love this 😍", "I love this smiling face with heart eyes"),
        ("ok👍", "ok thumbs up"),
        ("my phone screen cracked 💔", "my phone screen cracked broken heart"),
        # a variation selector or skin tone does not change the word
        ("❤️ love", "red heart love"),
        ("nice 👍🏽", "nice thumbs up"),
        # a run of one emoji is said once; different emoji each
        ("omg 🔥🔥🔥 so good", "omg fire so good"),
        ("🔥 🔥 hype", "fire hype"),
        ("🔥 wow 🔥", "fire wow fire"),
        ("😂😭", "face with tears of joy loudly crying face"),
        # a ZWJ sequence is one emoji
        ("family 👨\u200d👩\u200d👧", "family family man woman girl"),
        # Discord custom emoji, still and animated: the name as words
        ("lost <:pepe_sad:812345678901234567>", "lost pepe sad"),
        ("<a:catJam:867890123456712345> vibes", "cat jam vibes"),
        ("<:kekw:878901234567123456>", "kekw"),
        # ASCII emoticons only where they stand alone
        (":) nice <3", "smiling face nice red heart"),
        ("well :(", "well sad face"),
        ("f(x):D and a:b", "f(x):D and a:b"),
    ],
)
def test_emoji_forms(text: str, expected: str) -> None:
    assert normalize_chat(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@123456789012345678> you rock", "@user you rock"),
        ("<@!123456789012345678> nickname mention", "@user nickname mention"),
        ("<@&234567890123456789> congrats", "@role congrats"),
        ("see <#345678901234567890>", "see #channel"),
        ("try </sentiment:1234567890> now", "try /sentiment now"),
        ("starts <t:1700000000:R>", "starts time"),
        ("@everyone meeting now", "@everyone meeting now"),  # plain text stays
    ],
)
def test_mentions_become_neutral_placeholders(text: str, expected: str) -> None:
    assert normalize_chat(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("check https://youtu.be/aB3xK9pQ2rT lol", "check link lol"),
        ("docs: http://example.com/a?b=1&c=2#frag.", "docs: link ."),
        ("(see www.example.org/page), thanks", "(see link ), thanks"),
        ("HTTPS://EXAMPLE.COM is up", "link is up"),
        ("not a url: https:/broken", "not a url: https:/broken"),
    ],
)
def test_urls_become_link(text: str, expected: str) -> None:
    assert normalize_chat(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # fenced blocks: their content (which may say "error", "kill", "fail") is not mood
        ("this works great ```py\nraise Error('fail')\n``` thanks", "this works great code thanks"),
        ("```\nkill -9 1\n```", "code"),
        # an unclosed fence runs to the end of the message
        ("broken again ```\nTraceback (most recent call last):", "broken again code"),
        # inline code, single and double backticks
        ("run `rm -rf build` and it is fixed", "run code and it is fixed"),
        ("use ``a`b`` here", "use code here"),
        # a lone backtick is no code
        ("it`s fine", "it`s fine"),
    ],
)
def test_code_is_handled_deliberately(text: str, expected: str) -> None:
    assert normalize_chat(text) == expected


def test_spoilers_and_whitespace() -> None:
    assert normalize_chat("the ending ||was so sad||  honestly") == "the ending was so sad honestly"
    assert normalize_chat("  a\n\tb  ") == "a b"
    assert normalize_chat("") == ""


def test_plain_text_and_case_are_left_alone() -> None:
    for text in ["I LOVE this", "soooo good!!!", "ngl this slaps", "it's not bad, actually"]:
        assert normalize_chat(text) == text


def test_a_long_code_block_no_longer_hides_the_message() -> None:
    """Before, 500 lines of code filled the token limit; now the words around it are read."""
    text = "finally fixed it, I am so happy ```\n" + "x = 1\n" * 500 + "```"
    assert normalize_chat(text) == "finally fixed it, I am so happy code"


@given(st.text(max_size=200))
def test_any_text_normalises_to_text_without_emoji_or_markup(text: str) -> None:
    out = normalize_chat(text)
    assert isinstance(out, str)
    assert out == out.strip()
    assert "  " not in out
    assert normalize_chat(out) == out or "`" in out or "|" in out or ":" in out


def test_no_emoji_is_plain_ascii() -> None:
    """normalize_chat skips its emoji scans on ASCII text; that is only the same rewrite while
    every emoji the emoji package knows has a code point beyond ASCII (a digit or ``#`` alone
    is not one: keycaps carry U+FE0F U+20E3)."""
    import emoji

    assert not [e for e in emoji.EMOJI_DATA if e.isascii()]
    assert emoji.emoji_count("#1 * 0 9") == 0


def test_normaliser_names() -> None:
    assert NORMALIZERS == ("none", "chat")
    assert get_normalizer("none")("I love 😍") == "I love 😍"
    assert get_normalizer("chat") is normalize_chat
    with pytest.raises(NormalizerError, match=r"unknown text normaliser 'emoji'.*none, chat"):
        get_normalizer("emoji")


def test_the_encoder_reads_emoji_it_used_to_lose(tiny_bert: Path) -> None:
    """With the chat normaliser the emoji reach the model as words, not [UNK]."""
    chat = Encoder(str(tiny_bert), text_normalizer="chat")
    plain = Encoder(str(tiny_bert), text_normalizer="none")
    unk = plain.tokenizer.unk_token_id
    assert unk in plain.tokenize(["I love this 😍"])[0]
    assert unk not in chat.tokenize(["I love this 😍"])[0]
    assert chat.tokenize(["I love this 😍"]) == chat.tokenize(
        ["I love this smiling face with heart eyes"]
    )
    assert chat.readable(chat.tokenize(["😍"])[0])
    assert not plain.readable(plain.tokenize(["😍"])[0])
    # the normaliser is part of what the embedding cache is keyed by
    assert chat.cache_key != plain.cache_key


def test_an_unknown_normaliser_is_a_clear_encoder_error(tiny_bert: Path) -> None:
    with pytest.raises(EncoderError, match="unknown text normaliser"):
        Encoder(str(tiny_bert), text_normalizer="shouty")


def test_sst2_quotes_are_not_taken_for_code() -> None:
    """SST-2 is tokenised with ` and `` as opening quotes; none of it is code."""
    text = "rates an ` e ' for effort and a ` b ' for boring , `` xxx '' and `` yyy ''"
    assert normalize_chat(text) == text


def test_the_training_data_reads_the_same_either_way(sst2_dir: Path) -> None:
    """Movie reviews hold no chat markup: the chat normaliser leaves every SST-2 row as it is,
    so training on them with it is training on SST-2 itself."""
    for split in ("train", "dev", "test"):
        for line in (sst2_dir / f"{split}.tsv").read_text(encoding="utf-8").splitlines():
            text = line.split("\t")[0]
            assert normalize_chat(text) == " ".join(text.split()), text


def test_plan_letters_are_not_emoticons() -> None:
    assert normalize_chat("plan D: we wait") == "plan D: we wait"
