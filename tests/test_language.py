"""The language gate (model/serving/language.py): English chat, however short, is never
flagged; clearly foreign chat is, with its language; markup carries no language; the answer
never varies."""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from model.serving.language import DETECTOR_LANGUAGES, LanguageGate, strip_markup
from model.training.chateval import default_chat_set_path

DATA = Path(__file__).resolve().parent / "data"

SHORT_ENGLISH = [
    "lol", "gg", "ty!!", "brb", "omg yes", "ikr", "nvm", "wtf", "lmao 😂", "np",
    "gg wp", "ez", "rip", "xd", "XD", "kk", "k", "ok", "okay", "yes", "no", "nah", "yep",
    "idk", "idc", "smh", "tbh", "imo", "fr fr", "ngl that was sick", "bruh", "bro what", "oof",
    "pog", "poggers", "sheesh", "lmfao", "rofl", "hahaha", "hehe", "haha yes", "yesss",
    "nooo", "gm", "gn", "ttyl", "hbu", "wyd", "afk", "gtg", "cya", "thx", "tysm", "ily", "ofc",
    "mb", "my bad", "w", "L", "ratio", "based", "cringe", "same", "big mood", "sus", "no cap",
    "lets goooo", "omw", "good morning", "hi", "hey", "hello", "yo", "sup", "nice", "cool",
    "congrats!!", "uwu", "owo", "jk", "lmk", "wdym", "istg", "ong", "fam", "bet", "aight",
    "ayo", "lowkey", "deadass", "slay", "yeet", "afk for like 10 min", "brb gotta eat",
    "gg ez no re", "ily guys 💕", "that's so cool!!", "can't wait 🔥🔥", "kinda sus ngl",
    # words English chat borrows: too little evidence to call foreign
    "Hola!", "Bonjour", "ciao", "danke", "gracias", "merci", "adios amigo", "déjà vu",
    "merci beaucoup", "arigato", "el fin", "que sera sera",
]  # fmt: skip

MARKUP_ONLY = [
    "",
    "   \n\t ",
    "😂😂😂",
    "🔥",
    "👍🏽 👍🏽",
    ":) <3",
    "<@123456789012345678>",
    "<@!123456789012345678> <#987654321098765432> <@&111111111111111111>",
    "<:pepe_sad:123456789012345678> <a:cat_jam:123456789012345678>",
    "https://discord.gg/abcdef",
    "https://fr.wikipedia.org/wiki/Ch%C3%A2teau_de_Versailles",
    "`npm install`",
    "```py\n# c'est la vie, je ne sais vraiment pas pourquoi ça ne marche pas\nprint('hola')\n```",
    "</ping:123456789012345678> <t:1700000000:R>",
    "||👀||",
    # kaomoji: letters of other scripts, but no word of any
    "¯\\_(ツ)_/¯",
    "(╯°□°)╯︵ ┻━┻",
    "(ノಠ益ಠ)ノ彡┻━┻",
    "ಠ_ಠ ಠ_ಠ",
    "ᕕ( ᐛ )ᕗ",
    "(ﾉ◕ヮ◕)ﾉ*:･ﾟ✧",
    "(づ｡◕‿‿◕｡)づ",
    "༼ つ ◕_◕ ༽つ",
    "ʕ•ᴥ•ʔ",
    "( ͡° ͜ʖ ͡°)",
    "(ノ°Д°）ノ︵ ┻━┻",
    "(っ˘ω˘ς )",
]

# English the encoder reads, whatever the decoration
ENGLISH_DECORATED = [
    "𝓗𝓮𝓵𝓵𝓸 𝓯𝓻𝓲𝓮𝓷𝓭𝓼 how are you all doing",  # fancy-font letters
    "ｈｅｌｌｏ ｅｖｅｒｙｏｎｅ ｗｈａｔ'ｓ ｕｐ",  # full-width
    "I love sushi 寿司 so much",  # a foreign word inside English
    "this is so good 最高 honestly the best thing ever",
    "<@123456789012345678> check this out https://example.com/es/noticias/hoy 😂",
    "THIS IS THE BEST DAY OF MY LIFE!!!",
    "h̸e̸l̸l̸o̸ there my friend, how are you",  # combining marks over Latin
]


@pytest.fixture(scope="module")
def gate() -> LanguageGate:
    gate = LanguageGate()
    gate.load()
    return gate


def read_tsv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]


def test_short_english_chat_is_never_flagged(gate: LanguageGate) -> None:
    assert len(SHORT_ENGLISH) >= 40
    flagged = {t: c for t, c in zip(SHORT_ENGLISH, gate.foreign(SHORT_ENGLISH), strict=True) if c}
    assert flagged == {}


def test_markup_and_emoji_only_are_not_flagged(gate: LanguageGate) -> None:
    flagged = {t: c for t, c in zip(MARKUP_ONLY, gate.foreign(MARKUP_ONLY), strict=True) if c}
    assert flagged == {}


def test_decorated_english_is_not_flagged(gate: LanguageGate) -> None:
    result = gate.foreign(ENGLISH_DECORATED)
    assert result == [None] * len(ENGLISH_DECORATED)


def test_foreign_chat_is_flagged_with_its_language(gate: LanguageGate) -> None:
    rows = read_tsv(DATA / "foreign_chat.tsv")
    assert len(rows) >= 60
    assert len({language for _, language in rows}) >= 15
    got = gate.foreign([text for text, _ in rows])
    pairs = zip(rows, got, strict=True)
    wrong = [(text, language, code) for (text, language), code in pairs if code != language]
    assert wrong == []


@pytest.mark.parametrize(
    ("text", "language"),
    [
        # a non-Latin script is foreign even when short
        ("привет", "ru"),
        ("疲れた", "ja"),
        ("ㅋㅋㅋ", "ko"),
        ("ขอบคุณมากนะ", "th"),
        ("शुक्रिया", "hi"),
        ("ευχαριστώ", "el"),
        ("谢谢你们", "zh"),
        # markup around foreign text is ignored, not counted as English
        ("<@123456789012345678> bonjour tout le monde, comment ça va ? 😊", "fr"),
        ("ich habe keine Ahnung was hier los ist https://example.com/some/english/page", "de"),
    ],
)
def test_single_messages(gate: LanguageGate, text: str, language: str) -> None:
    assert gate.foreign([text]) == [language]


def test_chat_set_is_almost_never_flagged(gate: LanguageGate) -> None:
    texts = [row[0] for row in read_tsv(default_chat_set_path())]
    assert len(texts) > 300
    flagged = [t for t, c in zip(texts, gate.foreign(texts), strict=True) if c]
    assert len(flagged) < 0.01 * len(texts), flagged


def test_deterministic_and_independent_of_batch(gate: LanguageGate) -> None:
    rows = read_tsv(DATA / "foreign_chat.tsv")
    texts = [text for text, _ in rows] + SHORT_ENGLISH + MARKUP_ONLY
    first = gate.foreign(texts)
    assert gate.foreign(texts) == first
    assert LanguageGate().foreign(texts) == first
    assert [gate.foreign([t])[0] for t in texts] == first
    assert gate.foreign(list(reversed(texts))) == list(reversed(first))


def test_threads_share_one_gate() -> None:
    gate = LanguageGate()  # not loaded yet: the threads race to load it
    texts = [text for text, _ in read_tsv(DATA / "foreign_chat.tsv")] + SHORT_ENGLISH
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(gate.foreign, [texts] * 8))
    assert all(result == results[0] for result in results)


def test_hostile_input_is_answered(gate: LanguageGate) -> None:
    cases = json.loads((DATA / "hostile_inputs.json").read_text(encoding="utf-8"))["cases"]
    texts = [case["text"] * int(case.get("repeat", 1)) for case in cases]
    for code in gate.foreign(texts):
        assert code is None or (len(code) == 2 and code.isalpha() and code.islower())


def test_empty_batch(gate: LanguageGate) -> None:
    assert gate.foreign([]) == []


def test_languages_must_include_english() -> None:
    with pytest.raises(ValueError, match="English"):
        LanguageGate(languages=("fr", "de"))
    assert DETECTOR_LANGUAGES[0] == "en"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hey <@123> look https://x.com/a 😂😂 <:pepe:12> `code` :) ok", "hey look ok"),
        ("||spoiler|| text", "spoiler text"),
        ("```js\nlet x = 1\n``` after", "after"),
        ("ｆｕｌｌ width", "full width"),
        ("", ""),
    ],
)
def test_strip_markup(text: str, expected: str) -> None:
    assert strip_markup(text) == expected
