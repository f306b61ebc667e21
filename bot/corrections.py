"""The correction service between the cogs and storage: find the prediction an answer's button or
a moderator's menu is about, store what the person meant (with the text only where it may be
kept), and tell what becomes of the bot's reaction. Knows nothing of discord objects; the rules
(who may correct, which reaction) are bot/decisions.py's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.decisions import keeps_text, reaction_change, shown_mood
from bot.storage import CorrectionRecord, GuildSettings, Mood, Storage, StoredPrediction

GONE = (
    "This answer is no longer stored (erased by /forget-me, with its message, or by the "
    "retention period): there is nothing left to correct."
)
NO_REACTION_ROW = (
    "The bot holds no automatic reading of this message (it did not read it: reactions are "
    "off in this channel, the author opted out, or it was erased), so there is nothing to "
    "correct."
)
REFUSED = (
    "Not stored: the person who wrote it, or you, used /forget-me (or the message was deleted); "
    "corrections about them are not kept."
)


@dataclass(frozen=True)
class Corrected:
    """What a correction did. ``stored`` False: nothing was stored, ``why_not`` says why.

    For a reaction, ``remove`` / ``add`` are the emoji to take off / put on the message
    (``channel_id``, ``message_id``); both None when the reaction stays."""

    stored: bool
    meant: Mood
    model_mood: Mood | None = None
    kept_text: bool = False
    why_not: str | None = None
    channel_id: int | None = None
    message_id: int | None = None
    remove: str | None = None
    add: str | None = None


def model_mood(row: StoredPrediction) -> Mood:
    """The mood the model gave a stored prediction (a text it did not read: neutral)."""
    return row.mood if row.read else "neutral"


class CorrectionService:
    """Corrections of ``/sentiment`` and menu answers, and of automatic reactions."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def _settings(self, guild_id: int | None) -> GuildSettings | None:
        return None if guild_id is None else await self.storage.guild_settings(guild_id)

    async def _store(
        self, row: StoredPrediction, user_id: int, meant: Mood, settings: GuildSettings | None
    ) -> tuple[bool, bool]:
        """Store the correction of ``row``; (stored, text kept)."""
        # The text only where it may be kept today: typed into /sentiment, or a message of a
        # guild that stores message text (and the prediction kept it).
        text = row.text if keeps_text(row.source, settings) else None
        record = CorrectionRecord(
            prediction_id=row.id,
            guild_id=row.guild_id,
            channel_id=row.channel_id,
            message_id=row.message_id,
            user_id=user_id,
            author_id=row.author_id,
            source=row.source,
            mood=meant,
            model_mood=model_mood(row),
            model_version=row.model_version,
            created_at=datetime.now(UTC),
            text=text,
        )
        stored = await self.storage.add_correction(record) is not None
        return stored, stored and text is not None

    async def correct_answer(self, *, asker_id: int, asked_at: datetime, meant: Mood) -> Corrected:
        """The asker says an answer (the prediction logged for them at ``asked_at``) meant
        ``meant``. Who may press is decided before (decisions.answer_correction_refusal)."""
        row = await self.storage.prediction_at(asker_id, asked_at)
        if row is None:
            return Corrected(stored=False, meant=meant, why_not=GONE)
        settings = await self._settings(row.guild_id)
        stored, kept = await self._store(row, asker_id, meant, settings)
        return Corrected(
            stored=stored,
            meant=meant,
            model_mood=model_mood(row),
            kept_text=kept,
            why_not=None if stored else REFUSED,
            channel_id=row.channel_id,
            message_id=row.message_id,
        )

    async def reaction_reading(self, message_id: int) -> tuple[StoredPrediction, Mood] | None:
        """The bot's automatic prediction of a message and the mood its reaction shows now
        (after any correction); None when there is none."""
        row = await self.storage.auto_prediction(message_id)
        if row is None:
            return None
        latest = await self.storage.latest_correction(message_id)
        return row, shown_mood(model_mood(row), latest.mood if latest is not None else None)

    async def correct_reaction(
        self, *, moderator_id: int, message_id: int, meant: Mood
    ) -> Corrected:
        """A moderator says the message meant ``meant``: store it, and tell how the reaction
        changes. Who may correct is decided before (decisions.reaction_correction_refusal)."""
        reading = await self.reaction_reading(message_id)
        if reading is None:
            return Corrected(stored=False, meant=meant, why_not=NO_REACTION_ROW)
        row, shown = reading
        settings = await self._settings(row.guild_id)
        stored, kept = await self._store(row, moderator_id, meant, settings)
        if not stored:
            return Corrected(stored=False, meant=meant, model_mood=model_mood(row), why_not=REFUSED)
        remove, add = (
            reaction_change(shown, meant, settings) if settings is not None else (None, None)
        )
        return Corrected(
            stored=True,
            meant=meant,
            model_mood=model_mood(row),
            kept_text=kept,
            channel_id=row.channel_id,
            message_id=message_id,
            remove=remove,
            add=add,
        )
