"""Calls: WebRTC signaling (SDP offers/answers, ICE candidates) and the call state machine's
actions. See docs/protocol.md, "Calls"."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from switchboard import limits
from switchboard.protocol import EmptyData, Omitted, PushData, WireData, WireModel
from switchboard.wire.ids import ConversationId, UserId

CallId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Media = Literal["audio", "video"]
MAX_SDP_CHARS = limits.MAX_SDP_CHARS
MAX_GROUP_INVITEES = 3

# SDP and ICE are ASCII (RFC 8866 as WebRTC uses it, RFC 8839 for ICE): anything else is
# refused, so a length in characters is a length in bytes, and nothing stored grows when
# it is JSON-encoded (json.dumps turns one non-BMP character into 12 bytes).
_SDP = r"^[\x20-\x7e\r\n\t]*$"
_ICE = r"^[\x20-\x7e]*$"
SdpText = Annotated[str, StringConstraints(max_length=MAX_SDP_CHARS, pattern=_SDP)]
IceCandidateLine = Annotated[str, StringConstraints(max_length=1000, pattern=_ICE)]
IceMid = Annotated[str, StringConstraints(max_length=64, pattern=_ICE)]
IceUfrag = Annotated[str, StringConstraints(max_length=256, pattern=_ICE)]


class SessionDescription(WireModel):
    """``RTCSessionDescriptionInit``."""

    type: Literal["offer", "answer", "pranswer", "rollback"]
    sdp: SdpText = ""


class IceCandidate(WireModel):
    """``RTCIceCandidate.toJSON()``; an empty ``candidate`` is the end-of-candidates marker."""

    candidate: IceCandidateLine
    sdpMid: IceMid | None = None
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=1024)
    usernameFragment: IceUfrag | None = None


class CallInitiate(WireModel):
    """1:1 with ``calleeId`` and an ``offer``; a mesh group call with ``calleeIds`` (the
    offers are per pair, after each ``call:join``)."""

    calleeId: UserId | None = None
    calleeIds: list[UserId] | None = Field(default=None, min_length=1, max_length=16)
    media: Media
    offer: SessionDescription | None = None
    conversationId: ConversationId | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "CallInitiate":
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
    def _is_answer(self) -> "CallAnswer":
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


class CallMedia(WireModel):
    """What the caller's in-call device sends: microphone, camera, screen share on or off
    (fields left out keep their value)."""

    callId: CallId
    audio: bool | None = None
    video: bool | None = None
    screen: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> "CallMedia":
        if self.audio is None and self.video is None and self.screen is None:
            raise ValueError("give at least one of audio, video, screen")
        return self


class CallRecording(WireModel):
    """Recording with consent: announced to every participant (a ``call:recording`` push)
    and in the call's conversation (a system entry) before and after."""

    callId: CallId
    state: Literal["started", "stopped"]


class IceServersFor(WireModel):
    """TURN credentials are for a call: ``callId`` for a participant of a ringing or
    active call, ``calleeId`` for the caller about to place one; neither: STUN only."""

    callId: CallId | None = None
    calleeId: UserId | None = None

    @model_validator(mode="after")
    def _one_purpose(self) -> "IceServersFor":
        if self.callId is not None and self.calleeId is not None:
            raise ValueError("give callId or calleeId, not both")
        return self


# ---------------------------------------------------------------------- replies and pushes
CallStateName = Literal["ringing", "active", "ended", "rejected", "missed", "cancelled", "busy"]


class Sdp(WireData):
    """``RTCSessionDescriptionInit``, as relayed."""

    type: Literal["offer", "answer", "pranswer", "rollback"]
    sdp: str


class Candidate(WireData):
    """``RTCIceCandidateInit``, as relayed (fields the sender left out stay out)."""

    candidate: str
    sdpMid: Omitted[str] = None
    sdpMLineIndex: Omitted[int] = None
    usernameFragment: Omitted[str] = None


class ParticipantMedia(WireData):
    audio: bool
    video: bool
    screen: bool


class CallParticipant(WireData):
    userId: str
    state: Literal["invited", "joined", "left", "rejected", "missed", "cancelled"]
    role: Literal["caller", "callee"]
    media: Omitted[ParticipantMedia] = Field(default=None, description="once joined")


class CallStarted(WireData):
    """``call:initiate`` and ``call:join``."""

    callId: str
    state: CallStateName
    participants: list[CallParticipant]


class CallAnswerReply(WireData):
    """``call:answer``: ``state`` when the answer accepted the call; ``sent`` when it was
    relayed (a renegotiation, or ``toUserId`` given)."""

    callId: str
    state: Omitted[CallStateName] = None
    sent: Omitted[bool] = None


class CallStateReply(WireData):
    """``call:reject``, ``call:end``, ``call:leave``."""

    callId: str
    state: CallStateName


class CallInvited(WireData):
    callId: str
    participants: list[CallParticipant]


class CallRelayed(WireData):
    """``call:offer``, ``call:ice-candidate``: ``sent`` false means the candidate is kept
    until the peer joins."""

    callId: str
    sent: bool


class CallMediaReply(WireData):
    callId: str
    media: ParticipantMedia


class CallRecordingReply(WireData):
    callId: str
    state: Literal["started", "stopped"]
    recording: list[str] = Field(description="who is recording now")


class CallView(WireData):
    callId: str
    state: CallStateName
    media: Media
    callerId: str
    group: bool
    conversationId: str | None
    participants: list[CallParticipant]
    createdAt: int
    answeredAt: int | None
    endedAt: int | None
    endReason: str | None
    offer: Omitted[Sdp] = Field(default=None, description="to a participant still ringing")
    recording: list[str] = Field(default_factory=list, description="who is recording now")


class ActiveCall(WireData):
    call: CallView | None


class IceServer(WireData):
    urls: list[str]
    username: Omitted[str] = None
    credential: Omitted[str] = None


class IceServers(WireData):
    iceServers: list[IceServer]
    ttl: int
    expiresAt: int


class CallIncoming(PushData):
    TYPE = "call:incoming"
    callId: str
    callerId: str
    media: Media
    offer: Sdp | None = Field(description="1:1 only; a group call's offers come per pair")
    group: bool
    participants: list[CallParticipant]
    conversationId: str | None


class CallAnswered(PushData):
    TYPE = "call:answered"
    callId: str
    answer: Sdp
    fromUserId: str


class CallOfferPush(PushData):
    TYPE = "call:offer"
    callId: str
    offer: Sdp
    fromUserId: str


class CallIceCandidatePush(PushData):
    TYPE = "call:ice-candidate"
    callId: str
    candidate: Candidate
    fromUserId: str


class CallRejected(PushData):
    TYPE = "call:rejected"
    callId: str
    userId: str | None
    reason: str | None


class CallEnded(PushData):
    TYPE = "call:ended"
    callId: str
    reason: str | None


class CallUserEvent(PushData):
    callId: str
    userId: str


class CallAnsweredElsewhere(CallUserEvent):
    """To the user's other devices: stop ringing."""

    TYPE = "call:answered-elsewhere"


class CallParticipantJoined(CallUserEvent):
    TYPE = "call:participant-joined"


class CallParticipantLeft(CallUserEvent):
    TYPE = "call:participant-left"
    reason: str | None


class CallMediaPush(PushData):
    """A participant's microphone/camera/screen state, to the others' in-call connections."""

    TYPE = "call:media"
    callId: str
    userId: str
    audio: bool
    video: bool
    screen: bool


class CallRecordingPush(PushData):
    """Someone started or stopped recording: to every joined participant (the recorder's
    other participants and the recorder's own in-call connection alike); ``stopped`` also
    when a recorder leaves the call or its connection closes (to those still in it)."""

    TYPE = "call:recording"
    callId: str
    userId: str
    state: Literal["started", "stopped"]
    recording: list[str] = Field(description="who is recording now")


class CallError(PushData):
    """A failure no reply can report, to the in-call connection (or the owner's devices)
    it concerns: ``peer_gone`` (a frame relayed to a participant whose connection is
    gone: their part ends), or an upload code (``type_mismatch``, ``invalid_media``...)
    when the processor rejected the call's recording."""

    TYPE = "call:error"
    callId: str
    code: str
    message: str
    userId: Omitted[str] = Field(default=None, description="peer_gone: who is gone")
    uploadId: Omitted[str] = Field(default=None, description="a rejected recording")


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
    "call:media": CallMedia,
    "call:recording": CallRecording,
}
REPLIES: dict[str, type[WireData]] = {
    "call:initiate": CallStarted,
    "call:answer": CallAnswerReply,
    "call:reject": CallStateReply,
    "call:end": CallStateReply,
    "call:leave": CallStateReply,
    "call:join": CallStarted,
    "call:invite": CallInvited,
    "call:offer": CallRelayed,
    "call:ice-candidate": CallRelayed,
    "call:get-active": ActiveCall,
    "call:ice-servers": IceServers,
    "call:media": CallMediaReply,
    "call:recording": CallRecordingReply,
}
PUSHES: tuple[type[PushData], ...] = (
    CallIncoming,
    CallAnswered,
    CallOfferPush,
    CallIceCandidatePush,
    CallRejected,
    CallEnded,
    CallAnsweredElsewhere,
    CallParticipantJoined,
    CallParticipantLeft,
    CallMediaPush,
    CallRecordingPush,
    CallError,
)
