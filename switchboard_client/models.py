"""What the client hands to applications: messages and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchboard_client.wire import WireModel


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
    # Changes (docs/protocol.md, "Message operations"): apply a newer version over an older.
    version: int = 0
    edited_at: int | None = None
    deleted_at: int | None = None  # a tombstone: body empty, no attachments
    parent_seq: int | None = None  # a reply in the thread of that message
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
                version=_int(data.get("version")) or 0,
                edited_at=_int(data.get("editedAt")),
                deleted_at=_int(data.get("deletedAt")),
                parent_seq=_int(data.get("parentSeq")),
                raw=dict(data),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a message: {exc}") from exc


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not an integer")  # noqa: TRY004 - bad wire data
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """A server push (``type`` as on the wire, e.g. ``message:new``, ``typing``,
    ``presence``) or one of the client's own state changes (``client:connected``,
    ``client:disconnected``). ``message`` is set for ``message:new``."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    message: Message | None = None

    def parsed(self) -> WireModel:
        """``data`` as its push model (switchboard_client.wire.PUSHES): raises KeyError for
        a type that is no server push (``client:*``), ``pydantic.ValidationError`` for
        data that does not match."""
        from switchboard_client.wire import PUSHES

        return PUSHES[self.type].model_validate(self.data)


@dataclass(frozen=True, slots=True)
class Sent:
    """The reply to ``message:send``: the message is durably stored with ``seq``."""

    conversation_id: str
    seq: int
    message_id: str
    created_at: int
    client_message_id: str


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
