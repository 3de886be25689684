"""Consent and membership: message requests, leaving, blocking, group members and roles.

A conversation someone starts with a user they share no accepted conversation with is a
*request* for that user until they accept it (or reply); until then neither side's
presence, typing or receipts reach the other. See switchboard/membership.py."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

from typing import Literal

from pydantic import Field

from switchboard.protocol import EmptyData, PushData, WireData, WireModel
from switchboard.wire.ids import ConversationId, UserId
from switchboard.wire.system import SystemEvent

__all__ = ["SystemEvent"]


class ConversationRef(WireModel):
    """``conversation:accept``, ``conversation:decline``, ``conversation:leave``."""

    conversationId: ConversationId


class MembersAdd(WireModel):
    conversationId: ConversationId
    members: list[UserId] = Field(min_length=1, max_length=50)


class MemberRemove(WireModel):
    conversationId: ConversationId
    userId: UserId


class RoleSet(WireModel):
    conversationId: ConversationId
    userId: UserId
    role: Literal["admin", "member"]


class TitleSet(WireModel):
    conversationId: ConversationId
    title: str = Field(min_length=1, max_length=200)


class UserRef(WireModel):
    """``user:block``, ``user:unblock``."""

    userId: UserId


# ---------------------------------------------------------------------- replies and pushes
class ConsentChanged(WireData):
    """``conversation:accept`` / ``conversation:decline``."""

    conversationId: str
    changed: bool = Field(description="false: it was no request of yours (already accepted)")


class MembershipChanged(WireData):
    """A membership change, stored as the system entry ``seq`` of the conversation."""

    conversationId: str
    seq: int
    members: list[str] = Field(description="the members after the change")


class BlockChanged(WireData):
    userId: str
    blocked: bool = Field(description="whether the user is blocked now")


class BlockList(WireData):
    userIds: list[str]


class ConversationRequest(PushData):
    """A stranger started a conversation with you: a message request (accept, decline or
    block). Its messages arrive as usual; your presence, typing and receipts do not reach
    its members until you accept or reply."""

    TYPE = "conversation:request"
    conversationId: str
    fromUserId: str
    title: str | None
    listingId: str | None
    members: list[str]


class ConversationAccepted(PushData):
    """A member accepted the conversation (``conversation:accept``, or a reply): you are
    contacts now, each other's presence becomes visible (query it)."""

    TYPE = "conversation:accepted"
    conversationId: str
    userId: str
    ackedSeq: int = Field(description="the receipts held back while it was a request")
    readSeq: int


ACTIONS: dict[str, type[WireModel]] = {
    "conversation:accept": ConversationRef,
    "conversation:decline": ConversationRef,
    "conversation:leave": ConversationRef,
    "conversation:add-members": MembersAdd,
    "conversation:remove-member": MemberRemove,
    "conversation:set-role": RoleSet,
    "conversation:set-title": TitleSet,
    "user:block": UserRef,
    "user:unblock": UserRef,
    "user:blocks": EmptyData,
}
REPLIES: dict[str, type[WireData]] = {
    "conversation:accept": ConsentChanged,
    "conversation:decline": ConsentChanged,
    "conversation:leave": MembershipChanged,
    "conversation:add-members": MembershipChanged,
    "conversation:remove-member": MembershipChanged,
    "conversation:set-role": MembershipChanged,
    "conversation:set-title": MembershipChanged,
    "user:block": BlockChanged,
    "user:unblock": BlockChanged,
    "user:blocks": BlockList,
}
PUSHES: tuple[type[PushData], ...] = (ConversationRequest, ConversationAccepted)
