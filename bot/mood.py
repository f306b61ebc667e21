"""The application service between cogs and the machinery: classify a text with the inference
service, apply the guild's band, log the prediction (with a three-way model's probabilities and
why a text was not read). Knows nothing of discord objects."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.inference import InferenceService
from bot.storage import PredictionRecord, Source, Storage
from model import Prediction


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
    ) -> Prediction:
        """Predict (automatic work may be shed: :class:`bot.inference.Overloaded`) and log it.

        Every prediction made is submitted to storage before it is returned, so a reaction or
        reply that fails afterwards never loses the row.
        """
        prediction = await self.inference.predict(text, sheddable=source == "auto")
        if band is not None:
            prediction = prediction.with_band(band)
        probabilities = prediction.probabilities
        self.storage.submit(
            PredictionRecord(
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
            )
        )
        return prediction
