"""What the client hands to applications: messages and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message (from a ``message:new`` push, ``message:sync`` or history)."""

    conversation_id: str
    seq: int
    message_id: str
    sender_id: str
    body: str
    created_at: int
    client_message_id: str | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    # The frame's data as received (fields this client version does not know included).
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_wire(cls, data: Any) -> Message:
        """Raises ValueError on a frame that is not a message (never trusts the wire)."""
        if not isinstance(data, dict):
            raise ValueError("a message must be an object")  # noqa: TRY004 - bad wire data
        try:
            conversation_id = data["conversationId"]
            seq = data["seq"]
            if not isinstance(conversation_id, str) or not conversation_id:
                raise ValueError("conversationId must be a non-empty string")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise ValueError("seq must be a positive integer")
            attachments = data.get("attachments") or ()
            if not isinstance(attachments, list | tuple):
                raise ValueError("attachments must be a list")  # noqa: TRY004
            client_message_id = data.get("clientMessageId")
            return cls(
                conversation_id=conversation_id,
                seq=seq,
                message_id=str(data.get("messageId", "")),
                sender_id=str(data.get("senderId", "")),
                body=str(data.get("body", "")),
                created_at=int(data.get("createdAt", 0)),
                client_message_id=None if client_message_id is None else str(client_message_id),
                attachments=tuple(a for a in attachments if isinstance(a, dict)),
                raw=dict(data),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a message: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Event:
    """A server push (``type`` as on the wire, e.g. ``message:new``, ``typing``,
    ``presence``) or one of the client's own state changes (``client:connected``,
    ``client:disconnected``). ``message`` is set for ``message:new``."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    message: Message | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """The reply to ``message:send``: the message is durably stored with ``seq``."""

    conversation_id: str
    seq: int
    message_id: str
    created_at: int
    client_message_id: str


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One ``message:search`` hit: ``snippet`` with ``highlights`` as [start, end) offsets
    in Unicode code points (Python string indices), ``field`` "body" or "attachment"."""

    conversation_id: str
    seq: int
    message_id: str
    sender_id: str
    created_at: int
    snippet: str
    highlights: tuple[tuple[int, int], ...]
    field: str

    @classmethod
    def from_wire(cls, data: Any) -> SearchHit:
        """Raises ValueError on a hit that does not have the documented shape."""
        try:
            highlights = tuple((int(s), int(e)) for s, e in data.get("highlights") or ())
            return cls(
                conversation_id=str(data["conversationId"]),
                seq=int(data["seq"]),
                message_id=str(data.get("messageId", "")),
                sender_id=str(data.get("senderId", "")),
                created_at=int(data.get("createdAt", 0)),
                snippet=str(data.get("snippet", "")),
                highlights=highlights,
                field=str(data.get("field", "body")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a search hit: {exc}") from exc

    def highlighted(self) -> list[str]:
        """The matched words as they appear in the snippet."""
        return [self.snippet[start:end] for start, end in self.highlights]


@dataclass(frozen=True, slots=True)
class SearchResults:
    hits: tuple[SearchHit, ...]
    cursor: str | None  # pass back for the next page; None = no more


@dataclass(slots=True)
class Stats:
    connections: int = 0  # successful handshakes (1 + reconnects)
    disconnects: int = 0
    failed_attempts: int = 0  # handshakes that failed (refused, unreachable, timed out)
    requests: int = 0
    pings: int = 0
    acks: int = 0
    gap_syncs: int = 0  # message:sync requests made to fill a gap or to resume
    delivered: int = 0  # messages handed to the application
