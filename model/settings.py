"""Typed settings from environment variables, read once by the entry points.

Only the entry points (the console commands and ``scripts/``) read the environment, through
:meth:`EnvSettings.from_env`; library code takes paths and values as arguments. A settings
object built in code (``ModelSettings(data_dir=...)``) holds what it is given and reads nothing.
Each field names its variable (its validation alias) and, in its description, what a good value
is: a malformed variable becomes a :class:`SettingsError` whose message is one line naming the
variable, the value and the fix. :class:`ClassifierSettings` holds the variables that the bot
(``bot/config.py``) and the model's commands (:class:`ModelSettings`) both read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from model.serving.spec import (
    BUNDLED_ENCODER,
    DEFAULT_BATCH_SIZE,
    PRECISION_CHOICES,
    Pooling,
    PrecisionChoice,
)


class SettingsError(Exception):
    """A missing or malformed setting; the message is one line naming the variable and the fix."""


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


UserPath = Annotated[Path, AfterValidator(Path.expanduser)]


def variable(default: Any, name: str, what: str, **constraints: Any) -> Any:
    """A field read from the variable ``name``; ``what`` says what a good value is."""
    return Field(default, validation_alias=name, description=what, **constraints)


def _variable_name(field: FieldInfo, field_name: str) -> str:
    alias = field.validation_alias
    return alias if isinstance(alias, str) else field_name


class _Variables(PydanticBaseSettingsSource):
    """Each field's variable from a mapping (``os.environ``, or a test's dict). Blanks around a
    value are dropped, and an empty variable counts as unset: the field keeps its default."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.variables = variables

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = _variable_name(field, field_name)
        value = self.variables.get(name, "").strip()
        return value or None, name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, name, _ = self.get_field_value(field, field_name)
            if value is not None:
                found[name] = value
        return found


class EnvSettings(BaseSettings):
    """Settings whose fields are environment variables; see the module docstring."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )
    # Where the message of a malformed variable tells the user to fix it.
    FIX_IN: ClassVar[str] = "the environment"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Built in code, settings hold what they are given; from_env reads the variables.
        return (init_settings,)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, flags: Mapping[str, Any] | None = None
    ) -> Self:
        """The settings from ``env`` (default ``os.environ``). ``flags``: values given on the
        command line by field name, None for a flag not given; a flag wins over its variable
        (which is then not read at all). Raises :class:`SettingsError`."""
        values = _Variables(cls, os.environ if env is None else env)()
        for name, value in (flags or {}).items():
            if value is not None:
                values.pop(_variable_name(cls.model_fields[name], name), None)
                values[name] = value
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(cls._one_line(exc)) from None

    @classmethod
    def _one_line(cls, exc: ValidationError) -> str:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0])
        what = next(
            (
                field.description
                for field_name, field in cls.model_fields.items()
                if name in (field_name, _variable_name(field, field_name))
            ),
            None,
        )
        return f"{name}={error['input']!r} is not {what or 'valid'}. Fix it in {cls.FIX_IN}."


WHOLE = "a whole number >= 1"
PRECISION_WORDS = f"{', '.join(PRECISION_CHOICES[:-1])} or {PRECISION_CHOICES[-1]}"


class ClassifierSettings(EnvSettings):
    """The variables of the classifier that the bot and the model's commands both read."""

    # None: the committed default (model/artifacts/default.safetensors)
    artifact: UserPath | None = variable(None, "SENTIMENT_ARTIFACT", "a file path")
    encoder_batch_size: int = variable(DEFAULT_BATCH_SIZE, "SENTIMENT_BATCH_SIZE", WHOLE, ge=1)
    torch_threads: int | None = variable(None, "SENTIMENT_TORCH_THREADS", WHOLE, ge=1)
    # None: serving, the path the artifact was fitted on; training, auto
    precision: Annotated[PrecisionChoice | None, BeforeValidator(_lower)] = variable(
        None, "SENTIMENT_PRECISION", PRECISION_WORDS
    )
    # None: sentiment-bot/serving in XDG_CACHE_HOME (~/.cache); where the int8 encoder of each
    # artifact is built once and loaded at every later start (model/serving/serving_cache.py)
    serving_cache: UserPath | None = variable(None, "SENTIMENT_SERVING_CACHE", "a folder")


class ModelSettings(ClassifierSettings):
    """The settings of ``sentiment-train`` and ``sentiment-evaluate`` (.env.example)."""

    data_dir: UserPath | None = variable(None, "SENTIMENT_DATA_DIR", "a folder")
    chat_data_dir: UserPath | None = variable(None, "SENTIMENT_CHAT_DATA_DIR", "a folder")
    phrases_file: UserPath | None = variable(None, "SENTIMENT_PHRASES_FILE", "a file path")
    encoder: str = variable(BUNDLED_ENCODER, "SENTIMENT_ENCODER", "a model name or folder")
    pooling: Pooling | None = variable(None, "SENTIMENT_POOLING", "cls or mean")
    max_length: int | None = variable(None, "SENTIMENT_MAX_LENGTH", WHOLE, ge=1)
    cache_dir: UserPath | None = variable(None, "SENTIMENT_CACHE_DIR", "a folder")
    xdg_cache_home: UserPath | None = variable(None, "XDG_CACHE_HOME", "a folder")

    @property
    def embedding_cache_dir(self) -> Path:
        """``cache_dir``, else ``sentiment-bot/embeddings`` in ``XDG_CACHE_HOME`` (~/.cache)."""
        # imported here: the bot reads ClassifierSettings from this module and never loads the
        # training code
        from model.training.cache import default_cache_dir

        return self.cache_dir or default_cache_dir(self.xdg_cache_home)
