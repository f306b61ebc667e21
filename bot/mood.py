"""The application service between cogs and the machinery: classify a text with the inference
service, apply the guild's band, log the prediction (with a three-way model's probabilities and
why a text was not read); for a chat message, apply the rules of bot/decisions.py to the
guild's settings to tell whether and with what to react. Knows nothing of discord objects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from bot.decisions import (
    Band,
    ChatMessage,
    ReplayGuard,
    guild_band,
    keeps_text,
    reaction_emoji,
    reacts_in,
    skip_in_channel,
    skip_message,
)
from bot.inference import InferenceService, Overloaded
from bot.storage import PredictionRecord, Source, Storage, StorageError
from model import Explanation, Prediction

# The words that moved a prediction's mood most: model.serving.explain bound to the classifier.
Explainer = Callable[[str, Prediction], Explanation]


class MoodEvents(Protocol):
    """Told of each text classified or shed, with the guild it came from (None: a direct
    message); the ``/metrics`` counters per shard (bot/metrics.py). Must not block."""

    def classified(self, guild_id: int | None, source: Source) -> None: ...

    def shed(self, guild_id: int | None) -> None: ...


class NotSavedError(Exception):
    """The prediction was made but is not stored (the database is broken or its backlog is
    full). ``prediction`` is the answer; ``reason`` says why it was not saved. Callers must not
    react as if it were stored; a command may still show the mood, saying it was not saved."""

    def __init__(self, prediction: Prediction, reason: str, *, queued: bool = False) -> None:
        super().__init__(reason)
        self.prediction = prediction
        self.reason = reason
        self.queued = queued  # still queued: written when the database recovers


class MoodService:
    """``model_version`` is logged with each prediction; ``model_band`` applies where a guild
    chose none; ``explainer`` tells which words moved a mood (none: no explanations);
    ``events`` is told of every text classified or shed."""

    def __init__(
        self,
        inference: InferenceService,
        storage: Storage,
        model_version: str,
        model_band: Band,
        *,
        explainer: Explainer | None = None,
        events: MoodEvents | None = None,
    ) -> None:
        self.inference = inference
        self.storage = storage
        self.model_version = model_version
        self.model_band = model_band
        self.explainer = explainer
        self.events = events
        self._replays = ReplayGuard()

    async def auto_reaction(
        self, message: ChatMessage, *, closing: bool = False, watched: bool = False
    ) -> str | None:
        """The emoji to react to ``message`` with, or None for no reaction.

        ``watched``: mood alerts watch the channel: the message is read and logged even where
        reactions are off (and then gets none).

        The rules (bot/decisions.py) in order, the cheap ones first: the message itself
        (``closing``: the bot is shutting down), the guild's settings and the author's
        opt-out, a message delivered again (being handled, or its prediction already stored),
        then the prediction, classified (sheddable) and logged as :meth:`classify` does.

        Raises :class:`bot.inference.Overloaded` when shed, :class:`NotSavedError` when the
        prediction could not be stored (no reaction then: a reaction means it is durable),
        ``sqlite3.Error`` / :class:`bot.storage.StorageError` when the settings or the
        duplicate check cannot be read, and the inference service's errors.
        """
        if skip_message(message, closing=closing) is not None:
            return None
        assert message.guild_id is not None  # skip_message: no reactions in direct messages
        settings = await self.storage.guild_settings(message.guild_id)
        opted_out = self.storage.opted_out(message.author_id)
        if skip_in_channel(message, settings, opted_out=opted_out, watched=watched) is not None:
            return None
        if not self._replays.claim(message.id):
            return None
        try:
            if await self.storage.has_auto_prediction(message.id):
                return None  # delivered again after a resume, and already handled
            prediction = await self.classify(
                message.content,
                source="auto",
                user_id=message.author_id,
                guild_id=message.guild_id,
                channel_id=message.channel_id,
                message_id=message.id,
                store_text=keeps_text("auto", settings),
                band=guild_band(settings, self.model_band),
            )
        finally:
            self._replays.release(message.id)
        if not reacts_in(settings, message.channel_id, message.parent_id):
            return None  # read for a mood alert only
        return reaction_emoji(prediction, settings)

    async def classify(
        self,
        text: str,
        *,
        source: Source,
        user_id: int,
        guild_id: int | None,
        channel_id: int | None,
        message_id: int | None,
        store_text: bool,
        band: tuple[float, float] | None = None,
        author_id: int | None = None,
        private: bool = False,
        save_timeout: float | None = None,
        created_at: datetime | None = None,
    ) -> Prediction:
        """Predict (automatic work may be shed: :class:`bot.inference.Overloaded`) and log it.

        Returns only once the prediction is committed (group commit: it shares a transaction
        with the others written at the same time), so a reaction or reply sent afterwards is
        never about a row a crash could lose. Raises :class:`NotSavedError` (with the
        prediction) when storage cannot take it. The event loop is never blocked: the wait is
        an await on the writer task.

        ``save_timeout``: wait at most this long for the commit; past it, raise
        :class:`NotSavedError` with ``queued`` True (the record stays queued and is written
        when the database recovers). None: wait as long as the writer retries.

        ``created_at``: the time the row is logged with (default now); an answer's buttons
        find their row again by it (``Storage.prediction_at``).
        """
        try:
            prediction = await self.inference.predict(text, sheddable=source == "auto")
        except Overloaded:
            if self.events is not None:
                self.events.shed(guild_id)
            raise
        if self.events is not None:
            self.events.classified(guild_id, source)
        if band is not None:
            prediction = prediction.with_band(band)
        probabilities = prediction.probabilities
        record = PredictionRecord(
            guild_id=guild_id,
            channel_id=channel_id,
            message_id=message_id,
            user_id=user_id,
            source=source,
            label=prediction.label,
            p_positive=prediction.p_positive,
            in_band=prediction.in_band,
            model_version=self.model_version,
            created_at=created_at or datetime.now(UTC),
            text=text if store_text else None,
            p_negative=probabilities[0] if probabilities is not None else None,
            p_neutral=probabilities[1] if probabilities is not None else None,
            unread=prediction.unread,
            author_id=author_id,
            private=private,
        )
        try:
            # Cancelling the wait leaves the record in the writer's queue.
            await asyncio.wait_for(self.storage.save(record), save_timeout)
        except StorageError as exc:
            raise NotSavedError(prediction, str(exc)) from exc
        except TimeoutError as exc:
            why = self.storage.failure or "the database did not answer in time"
            raise NotSavedError(prediction, why, queued=True) from exc
        return prediction

    async def explain(self, text: str, prediction: Prediction) -> Explanation | None:
        """The words of ``text`` that moved ``prediction``'s mood most (model/serving/explain.py):
        one batched model call, on the model's thread through the inference service. None
        without an explainer, or for a text the model did not read.

        Raises the inference service's errors (:class:`bot.inference.InferenceError`,
        :class:`bot.inference.ServiceClosed`)."""
        if self.explainer is None or not prediction.read:
            return None
        return await self.inference.run(partial(self.explainer, text, prediction))
