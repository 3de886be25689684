"""Conversations, messages, receipts, typing, presence, preferences, notifications."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from switchboard.protocol import WireModel

UserId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^,\s]+$")]
ConversationId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
Seq = Annotated[int, Field(ge=0, le=2**53)]


class ConversationCreate(WireModel):
    members: list[UserId] = Field(min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=200)
    listingId: str | None = Field(default=None, min_length=1, max_length=128)


class ConversationList(WireModel):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=256)


class Attachment(WireModel):
    uploadId: str = Field(min_length=1, max_length=128)
    fileName: str | None = Field(default=None, max_length=255)
    contentType: str | None = Field(default=None, max_length=128)
    size: int | None = Field(default=None, ge=0)


class MessageSend(WireModel):
    conversationId: ConversationId
    clientMessageId: str = Field(min_length=1, max_length=64)
    # No length here: the one limit is MAX_BODY_CHARS (4000 by default, a deployment
    # setting), checked by the service with `payload_too_large`.
    body: str = Field(
        description="at most MAX_BODY_CHARS (4000) characters, else payload_too_large"
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)


class Cursor(WireModel):
    conversationId: ConversationId
    seq: Seq


class MessageSync(WireModel):
    cursors: dict[ConversationId, Seq] = Field(max_length=200)
    limit: int = Field(default=100, ge=1, le=500)


class MessageHistory(WireModel):
    conversationId: ConversationId
    beforeSeq: Seq | None = None
    limit: int = Field(default=50, ge=1, le=100)


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


class NotificationList(WireModel):
    limit: int = Field(default=20, ge=1, le=100)
    before: str | None = Field(default=None, max_length=256)
    unreadOnly: bool = False


class NotificationRead(WireModel):
    notificationIds: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        min_length=1, max_length=100
    )


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
    "notification:list": NotificationList,
    "notification:read": NotificationRead,
}
