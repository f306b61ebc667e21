"""Shared fixtures: SST-2 location, tiny randomly initialised DistilBERT/BERT models, the bundled
encoder (loaded once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on a hub that cannot be reached
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent

# The end-to-end fixtures (`classifier`, `world`) and helpers shared by the bot tests; the
# database engines (`engine`, `database`: SQLite and PostgreSQL) and their counts.
pytest_plugins = ["e2e_support", "engines"]


def _shared_data(env: str, name: str, probe: str, holds: str) -> Path:
    """A data folder: ``env`` when set, else ../shared/data/``name`` beside the repo. Missing,
    it skips the test, or fails it where SENTIMENT_REQUIRE_DATA says the data must be there."""
    value = os.environ.get(env)
    folder = Path(value) if value else REPO.parent / "shared" / "data" / name
    if not (folder / probe).is_file():
        message = f"{name} not found in {folder}: set {env} to the folder holding {holds}"
        if os.environ.get("SENTIMENT_REQUIRE_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    """SST-2 train/dev/test.tsv: SENTIMENT_DATA_DIR, else ../shared/data/sst2 beside the repo."""
    return _shared_data("SENTIMENT_DATA_DIR", "sst2", "test.tsv", "train.tsv, dev.tsv and test.tsv")


@pytest.fixture(scope="session")
def goemotions_dir() -> Path:
    """GoEmotions train/dev.tsv, labels and grouping: SENTIMENT_CHAT_DATA_DIR, else
    ../shared/data/goemotions beside the repo."""
    return _shared_data(
        "SENTIMENT_CHAT_DATA_DIR",
        "goemotions",
        "dev.tsv",
        "train.tsv, dev.tsv, labels.txt and sentiment_dict.json",
    )


_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    *("good", "bad", "great", "awful", "movie", "film", "the", "a", "is", "was", "not"),
    *("very", "fun", "boring", "love", "hate", "it"),
    *"abcdefghijklmnopqrstuvwxyz",
    *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"],
]  # fmt: skip


def _save_tiny(kind: str, folder: Path) -> Path:
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizerFast,
        DistilBertConfig,
        DistilBertModel,
    )

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(_VOCAB) + "\n", encoding="utf-8")
    # from_pretrained reads vocab.txt in transformers 4 and 5 alike (the constructor's keyword
    # changed from vocab_file to vocab, and a wrong one silently gives an empty vocabulary)
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    assert len(tokenizer) == len(set(_VOCAB)), "the tiny vocabulary did not load"
    torch.manual_seed(0)
    model: torch.nn.Module
    if kind == "distilbert":
        model = DistilBertModel(
            DistilBertConfig(
                vocab_size=len(_VOCAB), dim=32, hidden_dim=64, n_layers=2, n_heads=2,
                max_position_embeddings=64,
            )
        )  # fmt: skip
    else:
        model = BertModel(
            BertConfig(
                vocab_size=len(_VOCAB), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
            ),
        )  # fmt: skip
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer DistilBERT saved like a hub model (no pooling config)."""
    return _save_tiny("distilbert", tmp_path_factory.mktemp("tiny-distilbert"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT saved like a hub model (no pooling config)."""
    return _save_tiny("bert", tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def bundled_encoder():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2, loaded once."""
    from model.serving.encoder import Encoder

    return Encoder()
