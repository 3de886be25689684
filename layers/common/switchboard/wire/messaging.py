"""Conversations, messages, receipts, typing, presence, preferences, notifications."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from switchboard import limits
from switchboard.protocol import Omitted, PushData, WireData, WireModel
from switchboard.wire.ids import ConversationId, Seq, UserId
from switchboard.wire.system import SystemEntry


class ConversationCreate(WireModel):
    members: list[UserId] = Field(min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=200)
    listingId: str | None = Field(default=None, min_length=1, max_length=128)


class ConversationList(WireModel):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=256)
    folder: Literal["inbox", "requests"] = Field(
        default="inbox", description="requests: the conversations strangers started with you"
    )


class Attachment(WireModel):
    """``kind`` "voice" / "recording": an upload started with that purpose, for this
    conversation; ``durationMs`` must be the one the server read from the container
    (``upload:complete`` gives it); ``waveform`` (voice): levels to draw, 0-255."""

    uploadId: str = Field(min_length=1, max_length=128)
    fileName: str | None = Field(default=None, max_length=255)
    contentType: str | None = Field(default=None, max_length=128)
    size: int | None = Field(default=None, ge=0)
    kind: Literal["file", "voice", "recording"] | None = None
    durationMs: int | None = Field(default=None, ge=0, le=24 * 3600 * 1000)
    waveform: list[Annotated[int, Field(ge=0, le=255)]] | None = Field(
        default=None, max_length=limits.MAX_WAVEFORM_POINTS
    )

    @model_validator(mode="after")
    def _media(self) -> "Attachment":
        if self.kind in ("voice", "recording") and self.durationMs is None:
            raise ValueError(f"a {self.kind} attachment needs durationMs (from upload:complete)")
        if self.waveform is not None and self.kind != "voice":
            raise ValueError("waveform is for a voice attachment")
        return self


class MessageSend(WireModel):
    conversationId: ConversationId
    clientMessageId: str = Field(min_length=1, max_length=limits.MAX_CLIENT_MESSAGE_ID_CHARS)
    # Not validated here: a longer body is `payload_too_large` from the service, the one
    # check of the one limit (the schema still says maxLength).
    body: str = Field(
        json_schema_extra={"maxLength": limits.MAX_BODY_CHARS},
        description="longer than MAX_BODY_CHARS characters: payload_too_large",
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=limits.MAX_ATTACHMENTS)
    # Threads and quotes (switchboard/message_ops.py): a reply in the thread of the message
    # at parentSeq (itself not a reply), and/or a quote of the message at replyToSeq.
    parentSeq: Annotated[int, Field(ge=1, le=2**53)] | None = None
    replyToSeq: Annotated[int, Field(ge=1, le=2**53)] | None = None


class Cursor(WireModel):
    conversationId: ConversationId
    seq: Seq


class MessageSync(WireModel):
    cursors: dict[ConversationId, Seq] = Field(max_length=200)
    limit: int = Field(default=100, ge=1, le=500)


class MessageHistory(WireModel):
    conversationId: ConversationId
    beforeSeq: Seq | None = None
    # A page around a seq (a search hit): about half older, the rest from it on.
    aroundSeq: Annotated[int, Field(ge=1, le=2**53)] | None = None
    limit: int = Field(default=50, ge=1, le=100)

    @model_validator(mode="after")
    def _one_anchor(self) -> "MessageHistory":
        if self.beforeSeq is not None and self.aroundSeq is not None:
            raise ValueError("give beforeSeq or aroundSeq, not both")
        return self


class Typing(WireModel):
    conversationId: ConversationId


class PresenceQuery(WireModel):
    userIds: list[UserId] = Field(min_length=1, max_length=100)


class PreferencesSet(WireModel):
    emailOnOffline: bool | None = None
    email: (
        Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
        | None
    ) = None
    digestMinutes: int | None = Field(default=None, ge=1, le=1440)
    acceptRequests: bool | None = Field(
        default=None, description="false: nobody new may start a conversation with you"
    )


class PreferencesVerifyEmail(WireModel):
    """The 6-digit code the verification mail carried."""

    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]


class NotificationList(WireModel):
    limit: int = Field(default=20, ge=1, le=100)
    before: str | None = Field(default=None, max_length=256)
    unreadOnly: bool = False


class NotificationRead(WireModel):
    notificationIds: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        min_length=1, max_length=100
    )


# ---------------------------------------------------------------------- replies and pushes
class ConversationCreated(WireData):
    conversationId: str
    created: bool = Field(description="false: the 1:1 conversation existed already")


class LastMessage(WireData):
    seq: int
    senderId: str
    body: str = Field(description="the first 200 characters")
    createdAt: int
    deleted: Omitted[bool] = Field(default=None, description="true: deleted (body is empty)")


class ConversationSummary(WireData):
    conversationId: str
    title: str | None
    listingId: str | None
    members: list[str]
    lastSeq: int
    lastMessage: LastMessage | None
    lastActivityAt: int
    ackedSeq: int
    readSeq: int
    unread: int
    lastChange: int = Field(
        default=0, description="the conversation's change cursor (message:changes)"
    )
    mutedUntil: Omitted[int] = Field(
        default=None, description="epoch ms; notifications are off until then (2**53: forever)"
    )
    # Defaults: a reply from a server before message requests reads the same.
    request: bool = Field(
        default=False, description="true: a message request you have not accepted"
    )
    roles: dict[str, str] = Field(
        default_factory=dict,
        description='groups: "owner" and "admin" by user id (everyone else is a member)',
    )
    pending: list[str] = Field(
        default_factory=list, description="members who have not accepted yet"
    )


class ConversationPage(WireData):
    conversations: list[ConversationSummary]
    cursor: str | None = Field(description="pass it back for the next page; null: no more")


class MessageAttachment(WireData):
    uploadId: str
    fileName: Omitted[str] = None
    contentType: Omitted[str] = None
    size: Omitted[int] = None
    kind: Omitted[Literal["file", "voice", "recording"]] = None
    durationMs: Omitted[int] = Field(default=None, description="voice/recording, from the server")
    waveform: Omitted[list[int]] = None


class Reaction(WireData):
    emoji: str
    count: int
    userIds: list[str] = Field(description="who reacted, in the order they did")


class Quote(WireData):
    """The message a quote-reply quotes, as it is now (a deleted one: ``deleted``, no text)."""

    seq: int
    senderId: str
    snippet: str = Field(description="the first 100 characters; empty if deleted")
    deleted: bool


class Message(PushData):
    """A stored message (``message:new``, and in sync and history replies), as it is now:
    edited (``editedAt``), deleted (``deletedAt``: body empty, no attachments), reacted to,
    a thread reply (``parentSeq``) or a thread's parent (``replyCount``)."""

    TYPE = "message:new"
    conversationId: str
    seq: int
    messageId: str
    senderId: str
    body: str
    createdAt: int
    clientMessageId: str
    attachments: Omitted[list[MessageAttachment]] = None
    system: Omitted[SystemEntry] = Field(
        default=None, description="a system entry (body empty): a membership change, a recording"
    )
    version: Omitted[int] = Field(default=None, description="changes so far (absent: none)")
    editedAt: Omitted[int] = None
    deletedAt: Omitted[int] = None
    reactions: Omitted[list[Reaction]] = None
    parentSeq: Omitted[int] = None
    replyCount: Omitted[int] = None
    lastReplyAt: Omitted[int] = None
    replyTo: Omitted[Quote] = None


class MessageBatch(PushData):
    """Several stored messages in one frame: the reconnect backlog of a connection opened
    with ``backlog=batch`` in its URL's query, packed into frames of at most 32 KB (one
    billed WebSocket message each) in seq order. Each message is handled as a
    ``message:new`` would be (de-duplicated by conversationId and seq)."""

    TYPE = "message:batch"
    messages: list[Message]


class MessageSent(WireData):
    seq: int
    messageId: str
    createdAt: int


class CursorMoved(WireData):
    """``message:ack`` / ``message:read``: ``seq`` is capped at the conversation's lastSeq."""

    conversationId: str
    seq: int
    moved: bool = Field(description="false: the cursor was already there (nothing pushed)")


class SyncedConversation(WireData):
    lastSeq: int
    messages: list[Message]
    hasMore: bool
    lastChange: int = Field(default=0, description="message:changes after your change cursor")


class SyncResult(WireData):
    conversations: dict[str, SyncedConversation]


class HistoryPage(WireData):
    conversationId: str
    messages: list[Message]
    hasMore: bool
    lastSeq: int
    lastChange: int = Field(default=0, description="the conversation's change cursor")


class TypingSent(WireData):
    sent: bool


class Presence(PushData):
    TYPE = "presence"
    userId: str
    online: bool
    lastSeen: int | None = Field(description="epoch ms of the last disconnect; null if online")


class PresenceList(WireData):
    presence: list[Presence]


class PreferencesView(WireData):
    """The reply of ``preferences:get``, ``preferences:set`` and ``preferences:verify-email``:
    ``emailVerified`` stays false (and no notification mail goes out) until the code
    mailed to ``email`` is entered."""

    emailOnOffline: bool
    email: str | None
    emailVerified: bool
    digestMinutes: int
    acceptRequests: bool = Field(
        default=True,
        description="false: message requests are refused (starting one is forbidden)",
    )


class Notification(PushData):
    TYPE = "notification:new"
    notificationId: str
    kind: str = Field(description='"message", "missed_call", ...')
    data: dict[str, Any]
    createdAt: int
    read: bool


class NotificationPage(WireData):
    notifications: list[Notification]
    cursor: str | None


class NotificationsMarked(WireData):
    marked: int


class Receipt(PushData):
    conversationId: str
    seq: int
    userId: str


class MessageDelivered(Receipt):
    """A member acked up to ``seq``."""

    TYPE = "message:delivered"


class MessageRead(Receipt):
    """A member read up to ``seq``."""

    TYPE = "message:read"


class TypingPush(PushData):
    TYPE = "typing"
    conversationId: str
    userId: str
    state: Literal["start", "stop"]


# action -> model of its `data` (the router registrations and the docs agree with this).
ACTIONS: dict[str, type[WireModel]] = {
    "conversation:create": ConversationCreate,
    "conversation:list": ConversationList,
    "message:send": MessageSend,
    "message:ack": Cursor,
    "message:read": Cursor,
    "message:sync": MessageSync,
    "message:history": MessageHistory,
    "typing:start": Typing,
    "typing:stop": Typing,
    "presence:query": PresenceQuery,
    "preferences:set": PreferencesSet,
    "preferences:verify-email": PreferencesVerifyEmail,
    "notification:list": NotificationList,
    "notification:read": NotificationRead,
}
# action -> model of its reply's `data`.
REPLIES: dict[str, type[WireData]] = {
    "conversation:create": ConversationCreated,
    "conversation:list": ConversationPage,
    "message:send": MessageSent,
    "message:ack": CursorMoved,
    "message:read": CursorMoved,
    "message:sync": SyncResult,
    "message:history": HistoryPage,
    "typing:start": TypingSent,
    "typing:stop": TypingSent,
    "presence:query": PresenceList,
    "preferences:get": PreferencesView,
    "preferences:set": PreferencesView,
    "preferences:verify-email": PreferencesView,
    "notification:list": NotificationPage,
    "notification:read": NotificationsMarked,
}
PUSHES: tuple[type[PushData], ...] = (
    Message,
    MessageBatch,
    MessageDelivered,
    MessageRead,
    TypingPush,
    Presence,
    Notification,
)
