"""What the fake records of the bot's behaviour: requests, reactions, the reply a user sees,
and the events passed to listeners."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fakediscord.model import FakeFile
from fakediscord.protocol import JSON


@dataclass
class RecordedRequest:
    """One HTTP request the client made (``path`` is decoded and relative to ``/api/v10``).

    ``json`` is the JSON body (for multipart, the ``payload_json`` part); ``status`` is the
    status the fake answered with (None while the request is being handled).
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[FakeFile]
    time: float
    headers: dict[str, str] = field(repr=False)
    status: int | None = None


@dataclass
class Reaction:
    """A reaction the bot added with ``PUT .../reactions/{emoji}/@me``."""

    channel_id: int
    message_id: int
    emoji: str
    user_id: int
    time: float
    removed_at: float | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True)
class Reply:
    """What a user sees as the answer to an interaction (see :meth:`FakeInteraction.reply`)."""

    content: str
    embeds: list[JSON]
    files: list[FakeFile]
    components: list[JSON]
    ephemeral: bool
    message_id: int
    via: Literal["response", "update", "followup", "edit"]

    @property
    def text(self) -> str:
        """Content plus embed titles, descriptions, field names/values and footers, one per line."""
        parts = [self.content] if self.content else []
        for embed in self.embeds:
            for key in ("title", "description"):
                if embed.get(key):
                    parts.append(str(embed[key]))
            for item in embed.get("fields", []):
                parts.append(f"{item.get('name', '')}: {item.get('value', '')}")
            footer = embed.get("footer") or {}
            if footer.get("text"):
                parts.append(str(footer["text"]))
        return "\n".join(parts)


@dataclass(frozen=True)
class FakeEvent:
    """Something observable happened; passed to listeners added with ``add_listener``.

    ``kind`` is one of: ``gateway`` (connect/identify/resume/disconnect), ``commands_synced``,
    ``message_sent``, ``message_edited``, ``message_deleted``, ``reaction_added``,
    ``reaction_removed``, ``interaction_response``, ``interaction_followup``,
    ``interaction_edit``, ``typing``, ``unhandled_request``.
    """

    kind: str
    description: str
    data: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One dispatch (op 0) the gateway gave a session: which event, about which guild (None:
    no guild, e.g. a direct message), for which shard, on which connection (None: the session
    was disconnected, so it is only kept for a RESUME), and the id in the payload (a message's,
    an interaction's, a guild's; None if it has none)."""

    event: str
    guild_id: int | None
    shard: tuple[int, int] | None
    connection: int | None
    seq: int
    object_id: int | None
