"""The model commands' settings: every variable read, a flag wins over its variable, settings
built in code and library functions read no environment, one line for a malformed value."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from model.settings import ModelSettings, SettingsError
from model.training.cache import default_cache_dir
from model.training.data import DataError, find_phrases


def test_model_defaults_and_every_variable_is_read() -> None:
    s = ModelSettings.from_env({})
    assert (s.artifact, s.data_dir, s.chat_data_dir, s.phrases_file) == (None, None, None, None)
    assert (s.encoder_batch_size, s.torch_threads, s.precision) == (64, None, None)
    assert s.encoder == "sentence-transformers/all-MiniLM-L6-v2" and s.pooling is None
    s = ModelSettings.from_env({
        "SENTIMENT_ARTIFACT": "a.safetensors", "SENTIMENT_DATA_DIR": "sst",
        "SENTIMENT_CHAT_DATA_DIR": "go", "SENTIMENT_PHRASES_FILE": "p.tsv",
        "SENTIMENT_ENCODER": "bert-base-uncased",
        "SENTIMENT_POOLING": "cls", "SENTIMENT_MAX_LENGTH": "128", "SENTIMENT_BATCH_SIZE": " 16 ",
        "SENTIMENT_TORCH_THREADS": "2", "SENTIMENT_PRECISION": "BF16", "SENTIMENT_CACHE_DIR": "c",
    })  # fmt: skip
    assert (s.artifact, s.data_dir) == (Path("a.safetensors"), Path("sst"))
    assert s.chat_data_dir == Path("go")
    assert (s.phrases_file, s.encoder, s.pooling) == (Path("p.tsv"), "bert-base-uncased", "cls")
    assert (s.max_length, s.encoder_batch_size, s.torch_threads) == (128, 16, 2)
    assert s.precision == "bf16" and s.embedding_cache_dir == Path("c")


def test_empty_variables_keep_the_defaults() -> None:
    s = ModelSettings.from_env({"SENTIMENT_BATCH_SIZE": "", "SENTIMENT_PRECISION": "  "})
    assert (s.encoder_batch_size, s.precision) == (64, None)


def test_a_flag_wins_and_its_variable_is_not_read() -> None:
    env = {"SENTIMENT_BATCH_SIZE": "lots", "SENTIMENT_DATA_DIR": "from-env"}
    s = ModelSettings.from_env(env, flags={"encoder_batch_size": 8, "data_dir": None})
    assert s.encoder_batch_size == 8 and s.data_dir == Path("from-env")
    with pytest.raises(SettingsError, match="SENTIMENT_BATCH_SIZE='lots'"):
        ModelSettings.from_env(env, flags={"encoder_batch_size": None})


@pytest.mark.parametrize(
    ("name", "value", "what"),
    [
        ("SENTIMENT_PRECISION", "fp16", "is not auto, fp32, bf16 or int8"),
        ("SENTIMENT_POOLING", "max", "is not cls or mean"),
        ("SENTIMENT_MAX_LENGTH", "0", "is not a whole number >= 1"),
        ("SENTIMENT_TORCH_THREADS", "two", "is not a whole number >= 1"),
    ],
)
def test_a_malformed_variable_is_one_line(name: str, value: str, what: str) -> None:
    with pytest.raises(SettingsError) as caught:
        ModelSettings.from_env({name: value})
    message = str(caught.value)
    assert message == f"{name}={value!r} {what}. Fix it in the environment."


def test_the_cache_folder_follows_xdg_cache_home() -> None:
    s = ModelSettings.from_env({"XDG_CACHE_HOME": "/xdg"})
    assert s.embedding_cache_dir == Path("/xdg/sentiment-bot/embeddings")
    assert ModelSettings.from_env({}).embedding_cache_dir == default_cache_dir()
    assert default_cache_dir() == Path.home() / ".cache" / "sentiment-bot" / "embeddings"


def test_settings_built_in_code_and_library_defaults_read_no_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SENTIMENT_MAX_BATCH", "0")
    monkeypatch.setenv("SENTIMENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SENTIMENT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Settings().max_batch == 256 and ModelSettings().data_dir is None
    assert tmp_path not in default_cache_dir().parents
    phrases = tmp_path / "phrases.tsv"
    phrases.write_text("sentence\tlabel\nfine\t1\n")
    monkeypatch.setenv("SENTIMENT_PHRASES_FILE", str(phrases))
    with pytest.raises(DataError, match="SENTIMENT_PHRASES_FILE"):
        find_phrases(None, tmp_path / "sst2")  # beside the SST-2 folder, not the variable's
    assert find_phrases(phrases, None) == phrases
