"""The application service between cogs and the machinery: classify a text with the inference
service, apply the guild's band, log the prediction (with a three-way model's probabilities and
why a text was not read). Knows nothing of discord objects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.inference import InferenceService
from bot.storage import PredictionRecord, Source, Storage, StorageError
from model import Prediction


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
    def __init__(self, inference: InferenceService, storage: Storage, model_version: str) -> None:
        self.inference = inference
        self.storage = storage
        self.model_version = model_version

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
        """
        prediction = await self.inference.predict(text, sheddable=source == "auto")
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
            created_at=datetime.now(UTC),
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
