"""Calls: WebRTC signaling (SDP offers/answers, ICE candidates) and the call state machine's
actions. See docs/protocol.md, "Calls"."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from switchboard.protocol import EmptyData, WireModel
from switchboard.wire.messaging import ConversationId, UserId

CallId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Media = Literal["audio", "video"]
# A frame is at most 32 KB (API Gateway): an SDP has to fit in one with its envelope.
MAX_SDP_CHARS = 24_000
MAX_GROUP_INVITEES = 3


class SessionDescription(WireModel):
    """``RTCSessionDescriptionInit``."""

    type: Literal["offer", "answer", "pranswer", "rollback"]
    sdp: str = Field(default="", max_length=MAX_SDP_CHARS)


class IceCandidate(WireModel):
    """``RTCIceCandidate.toJSON()``; an empty ``candidate`` is the end-of-candidates marker."""

    candidate: str = Field(max_length=1000)
    sdpMid: str | None = Field(default=None, max_length=64)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=1024)
    usernameFragment: str | None = Field(default=None, max_length=256)


class CallInitiate(WireModel):
    """1:1 with ``calleeId`` and an ``offer``; a mesh group call with ``calleeIds`` (the
    offers are per pair, after each ``call:join``)."""

    calleeId: UserId | None = None
    calleeIds: list[UserId] | None = Field(default=None, min_length=1, max_length=16)
    media: Media
    offer: SessionDescription | None = None
    conversationId: ConversationId | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CallInitiate:
        if (self.calleeId is None) == (self.calleeIds is None):
            raise ValueError("give either calleeId (1:1) or calleeIds (group)")
        if self.calleeId is not None and self.offer is None:
            raise ValueError("a 1:1 call needs an offer")
        if self.calleeIds is not None and self.offer is not None:
            raise ValueError("a group call has no offer: offers are per pair, after call:join")
        if self.offer is not None and self.offer.type != "offer":
            raise ValueError("offer.type must be 'offer'")
        return self

    @property
    def callees(self) -> list[str]:
        if self.calleeId is not None:
            return [self.calleeId]
        return list(dict.fromkeys(self.calleeIds or []))


class CallRef(WireModel):
    callId: CallId


class CallAnswer(WireModel):
    callId: CallId
    answer: SessionDescription
    toUserId: UserId | None = None

    @model_validator(mode="after")
    def _is_answer(self) -> CallAnswer:
        if self.answer.type not in ("answer", "pranswer"):
            raise ValueError("answer.type must be 'answer' or 'pranswer'")
        return self


class CallReject(WireModel):
    callId: CallId
    reason: str | None = Field(default=None, max_length=100)


class CallIceCandidate(WireModel):
    callId: CallId
    candidate: IceCandidate
    toUserId: UserId | None = None


class CallOffer(WireModel):
    callId: CallId
    offer: SessionDescription
    toUserId: UserId | None = None


class CallInvite(WireModel):
    callId: CallId
    userIds: list[UserId] = Field(min_length=1, max_length=16)


class IceServersFor(WireModel):
    """TURN credentials are for a call: ``callId`` for a participant of a ringing or
    active call, ``calleeId`` for the caller about to place one; neither: STUN only."""

    callId: CallId | None = None
    calleeId: UserId | None = None

    @model_validator(mode="after")
    def _one_purpose(self) -> IceServersFor:
        if self.callId is not None and self.calleeId is not None:
            raise ValueError("give callId or calleeId, not both")
        return self


ACTIONS: dict[str, type[WireModel]] = {
    "call:initiate": CallInitiate,
    "call:answer": CallAnswer,
    "call:reject": CallReject,
    "call:end": CallRef,
    "call:leave": CallRef,
    "call:join": CallRef,
    "call:invite": CallInvite,
    "call:offer": CallOffer,
    "call:ice-candidate": CallIceCandidate,
    "call:get-active": EmptyData,
    "call:ice-servers": IceServersFor,
}


def dump(model: WireModel | None) -> dict[str, Any] | None:
    """A wire model as the plain dict that is stored and pushed (unset fields left out)."""
    return None if model is None else model.model_dump(exclude_none=True)
