"""The call model and its state machine (pure: no I/O).

``start``, ``join``, ``decline``, ``leave``, ``miss``, ``invite`` take a ``Call`` and
return the next one, or raise a typed error; their invariants are tested on random event
orders (tests/unit/test_calls.py). 1:1 calls are the 2-participant case of the same
machine; group calls are a mesh of at most ``max_participants`` (each pair negotiates its
own peer connection).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from switchboard.errors import BadRequest, Conflict, Forbidden, RateLimited
from switchboard.wire import calls as wire

# Candidates kept for a participant who has not answered yet, per target: by count and by
# bytes as stored (JSON), so what others send cannot grow the call item toward
# DynamoDB's 400 KB limit (a write over it would fail every later transition).
MAX_PENDING_CANDIDATES = 64
MAX_PENDING_ICE_BYTES = 16_384
# Each recording start and stop writes a system entry into the conversation: a call has at
# most this many starts, so nobody can flood a conversation by toggling.
MAX_RECORDING_STARTS = 20
# A recording upload may last as long as its recorder was announced as recording, plus this
# (the recorder starts after the "started" reply and stops before "stopped" is sent, so
# only the container's own rounding and the servers' clocks differ).
RECORDING_SLACK_MS = 1000


class CallState(StrEnum):
    RINGING = "ringing"
    ACTIVE = "active"
    ENDED = "ended"
    REJECTED = "rejected"
    MISSED = "missed"
    CANCELLED = "cancelled"
    BUSY = "busy"  # an attempt refused at once: recorded for the statistics only


class PartState(StrEnum):
    INVITED = "invited"  # ringing on every device of the user
    JOINED = "joined"  # in the call on one connection
    LEFT = "left"
    REJECTED = "rejected"
    MISSED = "missed"
    CANCELLED = "cancelled"


LIVE_CALL = frozenset({CallState.RINGING, CallState.ACTIVE})
IN_CALL = frozenset({PartState.INVITED, PartState.JOINED})


# ---------------------------------------------------------------------- typed errors
class CallConflict(Conflict):
    """A transition the call's current state does not allow; ``reason`` is machine-readable
    (``details.reason`` on the wire)."""

    def __init__(self, reason: str, message: str, **details: Any) -> None:
        super().__init__(message, details={"reason": reason, **details})
        self.reason = reason


class CalleeBusy(CallConflict):
    def __init__(self, user_ids: Iterable[str]) -> None:
        users = sorted(user_ids)
        super().__init__("busy", "the callee is in another call", userIds=users)
        self.user_ids = users


class CallFull(CallConflict):
    def __init__(self, max_participants: int) -> None:
        super().__init__(
            "call_full",
            f"a call has at most {max_participants} participants (mesh; no SFU)",
            maxParticipants=max_participants,
        )


class AlreadyInCall(CallConflict):
    def __init__(self) -> None:
        super().__init__("already_in_call", "you are already in a call")


@dataclass(frozen=True, slots=True)
class Participant:
    user_id: str
    role: str  # "caller" | "callee"
    state: PartState
    invited_at: int
    connection_id: str | None = None  # the in-call connection, once joined
    joined_at: int | None = None
    left_at: int | None = None
    reason: str | None = None
    # What the participant's device says it sends (call:media); shown on the others' tiles.
    audio: bool = True
    video: bool = True
    screen: bool = False

    @property
    def in_call(self) -> bool:
        return self.state in IN_CALL

    def media(self) -> wire.ParticipantMedia:
        return wire.ParticipantMedia(audio=self.audio, video=self.video, screen=self.screen)

    def wire(self) -> wire.CallParticipant:
        return wire.CallParticipant(
            userId=self.user_id,
            state=self.state.value,
            role=self.role,
            media=self.media() if self.state is PartState.JOINED else None,
        )


@dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    caller_id: str
    media: str
    group: bool
    state: CallState
    created_at: int
    participants: dict[str, Participant]
    conversation_id: str | None = None
    offer: dict[str, Any] | None = None
    answered_at: int | None = None
    ended_at: int | None = None
    end_reason: str | None = None
    # Candidates for a participant who has not joined yet: target userId -> [{fromUserId,
    # candidate}], pushed to the device that joins.
    pending_ice: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Who is recording now, and everyone who ever announced a recording of this call (only
    # they may upload one: nobody's recording reaches the conversation unannounced).
    recording: tuple[str, ...] = ()
    recorded_by: tuple[str, ...] = ()
    recording_starts: int = 0
    # When each current recording was announced, and each user's announced recording time
    # so far (ms): a recording upload may not last longer (consent covers what was announced).
    recording_since: dict[str, int] = field(default_factory=dict)
    recorded_ms: dict[str, int] = field(default_factory=dict)
    # Pairs (sorted) of participants with a block between them made during the call: no
    # SDP or ICE candidate is relayed between them any more (see ``separate``).
    apart: tuple[tuple[str, str], ...] = ()
    version: int = 0

    @property
    def live(self) -> bool:
        return self.state in LIVE_CALL

    @property
    def duration_ms(self) -> int | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at

    def in_call(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.in_call]

    def joined(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.state is PartState.JOINED]

    def participant(self, user_id: str) -> Participant:
        """The user's part, or ``forbidden``: only participants may act on a call."""
        found = self.participants.get(user_id)
        if found is None:
            raise Forbidden("you are not a participant of this call")
        return found

    def is_apart(self, first: str, second: str) -> bool:
        return _pair(first, second) in self.apart

    def participants_wire(self) -> list[wire.CallParticipant]:
        return [p.wire() for p in self.participants.values()]

    def wire(self, for_user: str | None = None) -> wire.CallView:
        mine = self.participants.get(for_user or "")
        ringing = mine is not None and mine.state is PartState.INVITED
        return wire.CallView(
            callId=self.call_id,
            state=self.state.value,
            media=self.media,
            callerId=self.caller_id,
            group=self.group,
            conversationId=self.conversation_id,
            participants=self.participants_wire(),
            createdAt=self.created_at,
            answeredAt=self.answered_at,
            endedAt=self.ended_at,
            endReason=self.end_reason,
            offer=wire.Sdp.model_validate(self.offer) if self.offer and ringing else None,
            recording=list(self.recording),
        )


def start(
    call_id: str,
    caller_id: str,
    connection_id: str,
    callees: list[str],
    *,
    media: str,
    group: bool,
    now: int,
    max_participants: int,
    offer: dict[str, Any] | None = None,
    conversation_id: str | None = None,
) -> Call:
    if caller_id in callees:
        raise BadRequest("you cannot call yourself")
    if not callees:
        raise BadRequest("nobody to call")
    if len(callees) + 1 > max_participants:
        raise CallFull(max_participants)
    participants = {
        caller_id: Participant(
            caller_id,
            "caller",
            PartState.JOINED,
            now,
            connection_id,
            joined_at=now,
            video=media == "video",
        ),
        **{u: Participant(u, "callee", PartState.INVITED, now) for u in callees},
    }
    return Call(
        call_id=call_id,
        caller_id=caller_id,
        media=media,
        group=group,
        state=CallState.RINGING,
        created_at=now,
        participants=participants,
        conversation_id=conversation_id,
        offer=offer,
    )


def join(call: Call, user_id: str, connection_id: str, now: int) -> Call:
    """An invitee answers (1:1) or joins (group) on ``connection_id``."""
    me = call.participant(user_id)
    if me.state is PartState.JOINED and me.connection_id == connection_id:
        return call  # already in on this device (a renegotiation answer is only relayed)
    if me.state is PartState.JOINED:
        if me.role == "caller":
            raise CallConflict("already_joined", "you started this call")
        raise CallConflict("answered_elsewhere", "the call was answered on another device")
    if not call.live or me.state is not PartState.INVITED:
        raise CallConflict("call_not_ringing", f"the call is {call.state.value}, not ringing")
    joined = replace(
        me,
        state=PartState.JOINED,
        connection_id=connection_id,
        joined_at=now,
        audio=True,
        video=call.media == "video",
        screen=False,
    )
    pending = {k: v for k, v in call.pending_ice.items() if k != user_id}
    # The 1:1 offer was for the ringing devices: once answered nobody needs it, and every
    # later write (mute, screen, recording) would carry up to MAX_SDP_CHARS of it again.
    return replace(
        call,
        participants={**call.participants, user_id: joined},
        state=CallState.ACTIVE,
        answered_at=call.answered_at or now,
        pending_ice=pending,
        offer=None,
    )


def decline(call: Call, user_id: str, now: int, reason: str = "rejected") -> Call:
    me = call.participant(user_id)
    if not call.live or me.state is not PartState.INVITED:
        raise CallConflict("call_not_ringing", "the call is not ringing for you")
    return _settle(_part_over(call, me, PartState.REJECTED, now, reason), now, "rejected")


def leave(call: Call, user_id: str, now: int, reason: str = "hangup") -> Call:
    """Hang up (``reason``: "hangup" or "disconnected"). The caller of a ringing call
    cancels it; an invitee who hangs up declines."""
    me = call.participant(user_id)
    if not call.live or not me.in_call:
        raise CallConflict("call_over", f"the call is {call.state.value} for you")
    if me.state is PartState.INVITED:
        return decline(call, user_id, now, reason="rejected")
    if call.state is CallState.RINGING and me.role == "caller":
        # Cancelled before anyone answered: every invitee stops ringing.
        why = "cancelled" if reason == "hangup" else reason
        call = _part_over(call, me, PartState.LEFT, now, why)
        for other in call.in_call():
            call = _part_over(call, other, PartState.CANCELLED, now, why)
        return replace(call, state=CallState.CANCELLED, ended_at=now, end_reason=why)
    left_reason = "left" if reason == "hangup" else reason
    return _settle(_part_over(call, me, PartState.LEFT, now, left_reason), now, reason)


def miss(call: Call, user_ids: Iterable[str], now: int) -> Call:
    """The ring timeout: the given invitees who are still ringing missed the call."""
    for user_id in user_ids:
        me = call.participants.get(user_id)
        if call.live and me is not None and me.state is PartState.INVITED:
            call = _part_over(call, me, PartState.MISSED, now, "missed")
    return _settle(call, now, "missed") if call.live else call


def invite(
    call: Call, inviter_id: str, user_ids: Iterable[str], now: int, max_participants: int
) -> Call:
    me = call.participant(inviter_id)
    if not call.live or me.state is not PartState.JOINED:
        raise CallConflict("call_over", "only a joined participant of a live call can invite")
    new = [u for u in dict.fromkeys(user_ids) if u not in {p.user_id for p in call.in_call()}]
    if not new:
        return call
    if len(call.in_call()) + len(new) > max_participants:
        raise CallFull(max_participants)
    participants = dict(call.participants)
    for user_id in new:
        participants[user_id] = Participant(user_id, "callee", PartState.INVITED, now)
    # A 1:1 call that grows becomes a mesh: its offer was for the first pair only.
    return replace(call, participants=participants, group=True, offer=None)


def set_media(
    call: Call,
    user_id: str,
    *,
    audio: bool | None = None,
    video: bool | None = None,
    screen: bool | None = None,
) -> Call:
    """``call:media``: what a joined participant sends now (``None``: unchanged)."""
    me = _joined(call, user_id)
    changed = replace(
        me,
        audio=me.audio if audio is None else audio,
        video=me.video if video is None else video,
        screen=me.screen if screen is None else screen,
    )
    return replace(call, participants={**call.participants, user_id: changed})


def set_recording(call: Call, user_id: str, state: str, now: int) -> Call:
    """``call:recording``: a joined participant starts or stops recording (each person's
    recording is their own: two may record at once). Starting twice or stopping what was
    not started is a no-op (the same call back)."""
    _joined(call, user_id)
    if state == "started":
        if user_id in call.recording:
            return call
        if call.recording_starts >= MAX_RECORDING_STARTS:
            raise RateLimited(f"a call's recording is started at most {MAX_RECORDING_STARTS} times")
        return replace(
            call,
            recording=(*call.recording, user_id),
            recorded_by=tuple(dict.fromkeys((*call.recorded_by, user_id))),
            recording_starts=call.recording_starts + 1,
            recording_since={**call.recording_since, user_id: now},
        )
    return _stop_recording(call, user_id, now)


def _stop_recording(call: Call, user_id: str, now: int) -> Call:
    if user_id not in call.recording:
        return call
    return replace(
        call,
        recording=tuple(u for u in call.recording if u != user_id),
        recording_since={u: t for u, t in call.recording_since.items() if u != user_id},
        recorded_ms={**call.recorded_ms, user_id: announced_recording_ms(call, user_id, now)},
    )


def announced_recording_ms(call: Call, user_id: str, now: int) -> int:
    """How long ``user_id`` has been announced as recording this call, up to ``now``."""
    since = call.recording_since.get(user_id) if user_id in call.recording else None
    running = max(0, now - since) if since is not None else 0
    return call.recorded_ms.get(user_id, 0) + running


def _joined(call: Call, user_id: str) -> Participant:
    me = call.participant(user_id)
    if not call.live or me.state is not PartState.JOINED:
        raise CallConflict("call_over", "only a joined participant of a live call can do that")
    return me


def add_pending_candidate(
    call: Call, from_user: str, to_user: str, candidate: dict[str, Any]
) -> Call:
    queued = call.pending_ice.get(to_user, [])
    entry = {"fromUserId": from_user, "candidate": candidate}
    if (
        len(queued) >= MAX_PENDING_CANDIDATES
        or len(json.dumps([*queued, entry])) > MAX_PENDING_ICE_BYTES
    ):
        raise RateLimited("too many ICE candidates before the peer answered")
    return replace(call, pending_ice={**call.pending_ice, to_user: [*queued, entry]})


def separate(call: Call, first: str, second: str) -> Call:
    """A block made between two participants during the call: nothing is relayed between
    them any more, and the candidates one kept for the other (still ringing) are dropped,
    as is a 1:1 call's offer (the caller's SDP, for the ringing callee's devices)."""
    pair = _pair(first, second)
    if pair in call.apart:
        return call
    pending = {
        to: kept
        for to, queued in call.pending_ice.items()
        if (kept := [e for e in queued if to not in pair or e["fromUserId"] not in pair])
    }
    offer = None if call.caller_id in pair and not call.group else call.offer
    return replace(call, apart=(*call.apart, pair), pending_ice=pending, offer=offer)


def _pair(first: str, second: str) -> tuple[str, str]:
    return (first, second) if first < second else (second, first)


def _part_over(call: Call, part: Participant, state: PartState, now: int, reason: str) -> Call:
    over = replace(part, state=state, left_at=now, reason=reason)
    pending = {k: v for k, v in call.pending_ice.items() if k != part.user_id}
    # Whoever leaves stops recording (their browser's recorder ends with the call).
    call = _stop_recording(call, part.user_id, now)
    return replace(
        call, participants={**call.participants, part.user_id: over}, pending_ice=pending
    )


def _settle(call: Call, now: int, reason: str) -> Call:
    """The call's state after a participant's part ended: it goes on while two people can
    still talk (joined or ringing), else it ends for everyone still there."""
    remaining = call.in_call()
    if len(remaining) >= 2 and any(p.state is PartState.JOINED for p in remaining):
        return call
    if call.state is CallState.RINGING:
        callee_parts = [p for p in call.participants.values() if p.role == "callee"]
        all_rejected = all(p.state is PartState.REJECTED for p in callee_parts)
        final = CallState.REJECTED if all_rejected else CallState.MISSED
        end_reason = final.value
    else:
        final, end_reason = CallState.ENDED, reason
    for part in remaining:
        call = _part_over(
            call,
            part,
            PartState.LEFT if part.state is PartState.JOINED else PartState.MISSED,
            now,
            end_reason,
        )
    # Nothing others sent outlives the call: the item an ending writes is small whatever
    # came before, so ending (and freeing everyone's active# item) cannot fail on size.
    return replace(
        call, state=final, ended_at=now, end_reason=end_reason, offer=None, pending_ice={}
    )
