"""Calls: a pure state machine of call and participant states, and the service that stores
its transitions (conditional writes) and pushes the signaling frames to the right devices.

The machine (``start``, ``join``, ``decline``, ``leave``, ``miss``, ``invite``) takes a
``Call`` and returns the next one, or raises a typed error; it never does I/O, so its
invariants are tested on random event orders (tests/unit/test_calls.py). The service reads
a call, applies one transition and writes it back on the condition that the call's
``version`` is unchanged: of two devices answering at once exactly one write wins, and the
loser re-reads and gets ``conflict``. Which frames go where follows from the difference
between the call before and after (``pushes``), in one place.

1:1 calls are the 2-participant case of the same machine; group calls are a mesh of at
most ``max_participants`` (each pair negotiates its own peer connection).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from switchboard.dal.base import SqsClientHolder
from switchboard.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited
from switchboard.observability import logger
from switchboard.protocol import push

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from switchboard.dal.calls import CallRepository
    from switchboard.dal.conversations import ConversationRepository
    from switchboard.delivery import Delivery
    from switchboard.notifications import NotificationQueue
    from switchboard.router import Caller
    from switchboard.turn import IceServers
    from switchboard.wire import calls as wire

MAX_PENDING_CANDIDATES = 64  # per target, kept until the callee answers
MAX_SQS_DELAY_SECONDS = 900
SAVE_ATTEMPTS = 6


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


class StaleCall(Exception):
    """The stored call changed since it was read (its version moved): read it again."""


# ---------------------------------------------------------------------- the machine
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

    @property
    def in_call(self) -> bool:
        return self.state in IN_CALL

    def wire(self) -> dict[str, Any]:
        return {"userId": self.user_id, "state": self.state.value, "role": self.role}


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

    def wire(self, for_user: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "callId": self.call_id,
            "state": self.state.value,
            "media": self.media,
            "callerId": self.caller_id,
            "group": self.group,
            "conversationId": self.conversation_id,
            "participants": [p.wire() for p in self.participants.values()],
            "createdAt": self.created_at,
            "answeredAt": self.answered_at,
            "endedAt": self.ended_at,
            "endReason": self.end_reason,
        }
        mine = self.participants.get(for_user or "")
        if self.offer is not None and mine is not None and mine.state is PartState.INVITED:
            data["offer"] = self.offer
        return data


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
            caller_id, "caller", PartState.JOINED, now, connection_id, joined_at=now
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
    )
    pending = {k: v for k, v in call.pending_ice.items() if k != user_id}
    return replace(
        call,
        participants={**call.participants, user_id: joined},
        state=CallState.ACTIVE,
        answered_at=call.answered_at or now,
        pending_ice=pending,
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


def add_pending_candidate(
    call: Call, from_user: str, to_user: str, candidate: dict[str, Any]
) -> Call:
    queued = call.pending_ice.get(to_user, [])
    if len(queued) >= MAX_PENDING_CANDIDATES:
        raise RateLimited("too many ICE candidates before the peer answered")
    entry = {"fromUserId": from_user, "candidate": candidate}
    return replace(call, pending_ice={**call.pending_ice, to_user: [*queued, entry]})


def _part_over(call: Call, part: Participant, state: PartState, now: int, reason: str) -> Call:
    over = replace(part, state=state, left_at=now, reason=reason)
    pending = {k: v for k, v in call.pending_ice.items() if k != part.user_id}
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
    return replace(call, state=final, ended_at=now, end_reason=end_reason)


# ---------------------------------------------------------------------- pushes
@dataclass(frozen=True, slots=True)
class Push:
    """A frame for one user: to one connection, or to all their devices but one."""

    user_id: str
    frame: dict[str, Any]
    connection_id: str | None = None
    exclude_connection: str | None = None


def incoming_frame(call: Call) -> dict[str, Any]:
    return push(
        "call:incoming",
        {
            "callId": call.call_id,
            "callerId": call.caller_id,
            "media": call.media,
            "offer": None if call.group else call.offer,
            "group": call.group,
            "participants": [p.wire() for p in call.participants.values()],
            "conversationId": call.conversation_id,
        },
    )


def pushes(before: Call | None, after: Call, actor_connection: str | None) -> list[Push]:
    """What everyone else must be told about the step from ``before`` to ``after`` (the
    actor's own connection learns it from its reply)."""
    plan = _PushPlan(after.call_id, actor_connection)
    if before is not None and before.live and not after.live:
        plan.call_over(before, after)
        return plan.out
    old = before.participants if before is not None else {}
    for user_id, now_part in after.participants.items():
        was = old.get(user_id)
        if now_part.state is PartState.INVITED and (was is None or not was.in_call):
            plan.out.append(Push(user_id, incoming_frame(after)))
        elif was is None or was.state is now_part.state:
            continue
        elif was.state is PartState.INVITED and now_part.state is PartState.JOINED:
            plan.joined(after, now_part)
        elif was.in_call and not now_part.in_call:
            plan.left(after, was, now_part)
    return plan.out


class _PushPlan:
    def __init__(self, call_id: str, actor_connection: str | None) -> None:
        self.call_id = call_id
        self.actor = actor_connection
        self.out: list[Push] = []

    def tell(self, part: Participant, frame: dict[str, Any]) -> None:
        if part.state is PartState.JOINED and part.connection_id:
            if part.connection_id != self.actor:
                self.out.append(Push(part.user_id, frame, connection_id=part.connection_id))
        else:  # ringing: every device
            self.out.append(Push(part.user_id, frame, exclude_connection=self.actor))

    def call_over(self, before: Call, after: Call) -> None:
        if after.state is CallState.REJECTED:
            rejecter = next(
                (p for p in after.participants.values() if p.state is PartState.REJECTED), None
            )
            frame = push(
                "call:rejected",
                {
                    "callId": self.call_id,
                    "userId": rejecter.user_id if rejecter else None,
                    "reason": rejecter.reason if rejecter else None,
                },
            )
        else:
            reason = after.end_reason or after.state.value
            frame = push("call:ended", {"callId": self.call_id, "reason": reason})
        for part in before.in_call():
            self.tell(part, frame)

    def joined(self, after: Call, part: Participant) -> None:
        self.out.append(
            Push(
                part.user_id,
                push("call:answered-elsewhere", {"callId": self.call_id, "userId": part.user_id}),
                exclude_connection=part.connection_id,
            )
        )
        if after.group:
            frame = push(
                "call:participant-joined", {"callId": self.call_id, "userId": part.user_id}
            )
            for other in after.joined():
                if other.user_id != part.user_id:
                    self.tell(other, frame)

    def left(self, after: Call, was: Participant, now_part: Participant) -> None:
        data = {"callId": self.call_id, "userId": was.user_id, "reason": now_part.reason}
        if was.state is PartState.INVITED:
            # The user's other devices stop ringing.
            if now_part.state is PartState.REJECTED:
                self.tell(was, push("call:rejected", data))
            else:
                self.tell(
                    was, push("call:ended", {"callId": self.call_id, "reason": now_part.reason})
                )
        elif was.connection_id != self.actor:  # hung up from another device, or timed out
            self.tell(was, push("call:ended", {"callId": self.call_id, "reason": now_part.reason}))
        for other in after.joined():
            self.tell(other, push("call:participant-left", data))


# ---------------------------------------------------------------------- the service
@dataclass(frozen=True, slots=True)
class CallLimits:
    ring_timeout_seconds: int = 30
    max_participants: int = 4


@dataclass(frozen=True, slots=True)
class RingTimeout:
    call_id: str
    user_ids: list[str]

    def body(self) -> str:
        return json.dumps({"callId": self.call_id, "userIds": self.user_ids})

    @classmethod
    def parse(cls, body: str) -> RingTimeout:
        data = json.loads(body)
        return cls(str(data["callId"]), [str(u) for u in data["userIds"]])


class RingTimeoutQueue(SqsClientHolder):
    def __init__(self, queue_url: str, *, client: SQSClient | None = None) -> None:
        super().__init__(client=client)
        self._queue_url = queue_url

    def schedule(self, timeout: RingTimeout, delay_seconds: int) -> None:
        self.client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=timeout.body(),
            DelaySeconds=max(0, min(MAX_SQS_DELAY_SECONDS, delay_seconds)),
        )


class CallService:
    def __init__(
        self,
        calls: CallRepository,
        delivery: Delivery,
        conversations: ConversationRepository,
        notifications: NotificationQueue,
        ring_timeouts: RingTimeoutQueue,
        *,
        limits: CallLimits,
        ice_servers: IceServers | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.calls = calls
        self.delivery = delivery
        self.conversations = conversations
        self.notifications = notifications
        self.ring_timeouts = ring_timeouts
        self.limits = limits
        self.ice_servers = ice_servers
        self._clock = clock
        self._new_id = new_id

    def _now(self) -> int:
        return int(self._clock() * 1000)

    # ------------------------------------------------------------------ actions
    def initiate(self, caller: Caller, data: wire.CallInitiate) -> dict[str, Any]:
        callees = data.callees
        if data.conversationId is not None:
            conversation = self.conversations.get(data.conversationId)
            if conversation is None or not {caller.user_id, *callees} <= conversation.members:
                raise Forbidden("every participant must be a member of the conversation")
        now = self._now()
        call = start(
            self._new_id(),
            caller.user_id,
            caller.connection_id,
            callees,
            media=data.media,
            group=data.calleeIds is not None,
            now=now,
            max_participants=self.limits.max_participants,
            offer=data.offer.model_dump(exclude_none=True) if data.offer else None,
            conversation_id=data.conversationId,
        )
        # Scheduled first: a timeout for a call that was never stored is a no-op, while a
        # stored call without its timeout would ring until its active items expire.
        self.ring_timeouts.schedule(
            RingTimeout(call.call_id, callees), self.limits.ring_timeout_seconds
        )
        busy = self.calls.create(call, self._ringing_until(now))
        if busy:
            if caller.user_id in busy:
                raise AlreadyInCall()
            # Recorded (without holding anyone) so the statistics count the attempt.
            self.calls.record(
                replace(call, state=CallState.BUSY, ended_at=now, end_reason="busy", offer=None)
            )
            raise CalleeBusy(busy)
        self._deliver(pushes(None, call, caller.connection_id))
        logger.info(
            "call initiated",
            extra={"callId": call.call_id, "callees": callees, "group": call.group},
        )
        return {
            "callId": call.call_id,
            "state": call.state.value,
            "participants": [p.wire() for p in call.participants.values()],
        }

    def answer(self, caller: Caller, data: wire.CallAnswer) -> dict[str, Any]:
        if data.toUserId is not None:
            return self._relay(
                caller,
                data.callId,
                data.toUserId,
                "call:answered",
                "answer",
                data.answer.model_dump(exclude_none=True),
            )
        answer = data.answer.model_dump(exclude_none=True)
        before, after = self._transition(
            data.callId,
            lambda call: join(_one_to_one(call), caller.user_id, caller.connection_id, self._now()),
            caller.connection_id,
        )
        if after == before:
            # Already in the call on this device: the answer to a renegotiation offer.
            return self._relay(caller, data.callId, None, "call:answered", "answer", answer)
        peer = after.participants[after.caller_id]
        if peer.connection_id:
            me = after.participants[caller.user_id]
            self._push_to(after, me, peer, "call:answered", "answer", answer)
        self._flush_pending(before, caller)
        return {"callId": after.call_id, "state": after.state.value}

    def join(self, caller: Caller, data: wire.CallRef) -> dict[str, Any]:
        def change(call: Call) -> Call:
            if not call.group:
                raise BadRequest("a 1:1 call is accepted with call:answer")
            return join(call, caller.user_id, caller.connection_id, self._now())

        before, after = self._transition(data.callId, change, caller.connection_id)
        self._flush_pending(before, caller)
        return {
            "callId": after.call_id,
            "state": after.state.value,
            "participants": [p.wire() for p in after.participants.values()],
        }

    def reject(self, caller: Caller, data: wire.CallReject) -> dict[str, Any]:
        reason = data.reason or "declined"
        _, after = self._transition(
            data.callId,
            lambda call: decline(call, caller.user_id, self._now(), reason),
            caller.connection_id,
        )
        return {"callId": after.call_id, "state": after.state.value}

    def end(self, caller: Caller, data: wire.CallRef) -> dict[str, Any]:
        _, after = self._transition(
            data.callId,
            lambda call: leave(call, caller.user_id, self._now()),
            caller.connection_id,
        )
        return {"callId": after.call_id, "state": after.state.value}

    def invite(self, caller: Caller, data: wire.CallInvite) -> dict[str, Any]:
        if caller.user_id in data.userIds:
            raise BadRequest("you cannot invite yourself")
        before, after = self._transition(
            data.callId,
            lambda call: invite(
                call, caller.user_id, data.userIds, self._now(), self.limits.max_participants
            ),
            caller.connection_id,
        )
        new = [
            u
            for u, p in after.participants.items()
            if p.state is PartState.INVITED
            and not (u in before.participants and before.participants[u].in_call)
        ]
        if new:
            self.ring_timeouts.schedule(
                RingTimeout(after.call_id, new), self.limits.ring_timeout_seconds
            )
        return {
            "callId": after.call_id,
            "participants": [p.wire() for p in after.participants.values()],
        }

    def relay_ice(self, caller: Caller, data: wire.CallIceCandidate) -> dict[str, Any]:
        candidate = data.candidate.model_dump(exclude_none=True)
        call = self._get(data.callId)
        sender, target = self._pair(call, caller, data.toUserId)
        if target.state is PartState.JOINED and target.connection_id:
            self._push_to(call, sender, target, "call:ice-candidate", "candidate", candidate)
            return {"callId": call.call_id, "sent": True}

        def keep(current: Call) -> Call:
            _, now_target = self._pair(current, caller, target.user_id)
            if now_target.state is not PartState.INVITED:
                raise _PeerAnswered()  # it answered meanwhile: send it directly instead
            return add_pending_candidate(current, sender.user_id, target.user_id, candidate)

        try:
            self._transition(call.call_id, keep, caller.connection_id)
        except _PeerAnswered:
            return self.relay_ice(caller, data)
        return {"callId": call.call_id, "sent": False}

    def relay_offer(self, caller: Caller, data: wire.CallOffer) -> dict[str, Any]:
        return self._relay(
            caller,
            data.callId,
            data.toUserId,
            "call:offer",
            "offer",
            data.offer.model_dump(exclude_none=True),
        )

    def get_active(self, caller: Caller) -> dict[str, Any]:
        call_id = self.calls.active_call_id(caller.user_id, self._now())
        call = self.calls.get(call_id) if call_id else None
        if call is None or not call.live:
            return {"call": None}
        return {"call": call.wire(for_user=caller.user_id)}

    def ice_servers_for(self, caller: Caller, data: wire.IceServersFor) -> dict[str, Any]:
        """TURN credentials only for a call (see turn.py): the relay is no free proxy."""
        if self.ice_servers is None:
            raise NotFound("no ICE servers are configured")
        if data.callId is not None:
            call = self.calls.get(data.callId)
            mine = call.participants.get(caller.user_id) if call else None
            if call is None or mine is None:
                raise NotFound("no such call")
            if not call.live or mine.state not in IN_CALL:
                raise Conflict(f"the call is {call.state.value}")
            return self.ice_servers.for_user(caller.user_id)
        if data.calleeId is not None:
            if data.calleeId == caller.user_id:
                raise BadRequest("a call needs someone else")
            self.ice_servers.count_issue(caller.user_id)
            return self.ice_servers.for_user(caller.user_id)
        return self.ice_servers.stun_only()

    # ------------------------------------------------------------------ asynchronous events
    def ring_timed_out(self, timeout: RingTimeout) -> None:
        """Invitees still ringing missed the call (idempotent: a call that moved on is
        left alone)."""
        try:
            before, after = self._transition(
                timeout.call_id, lambda call: miss(call, timeout.user_ids, self._now()), None
            )
        except NotFound:
            return
        missed = [
            u
            for u in timeout.user_ids
            if before.participants.get(u) is not None
            and before.participants[u].state is PartState.INVITED
            and after.participants[u].state is PartState.MISSED
        ]
        if not missed:
            return
        from switchboard.notifications import NotificationJob

        now = self._now()
        self.notifications.enqueue(
            NotificationJob(
                kind="missed_call",
                user_id=user_id,
                created_at=now,
                source=f"call#{after.call_id}",
                data={
                    "callId": after.call_id,
                    "callerId": after.caller_id,
                    "media": after.media,
                    "conversationId": after.conversation_id,
                },
                conversation_id=None,
            )
            for user_id in missed
        )
        logger.info("call missed", extra={"callId": after.call_id, "missed": missed})

    def connection_closed(self, connection_id: str, user_id: str) -> bool:
        """Ends the user's part of a call this connection was in (the in-call connection,
        or the caller's while ringing). True if a call was affected."""
        call_id = self.calls.active_call_id(user_id, self._now())
        if call_id is None:
            return False

        def change(call: Call) -> Call:
            me = call.participants.get(user_id)
            if me is None or me.connection_id != connection_id or not me.in_call or not call.live:
                raise _NothingToDo()
            return leave(call, user_id, self._now(), reason="disconnected")

        try:
            self._transition(call_id, change, connection_id)
        except (_NothingToDo, NotFound):
            return False
        logger.info("call left on disconnect", extra={"callId": call_id, "userId": user_id})
        return True

    # ------------------------------------------------------------------ helpers
    def _ringing_until(self, now: int) -> int:
        # The ring timeout normally clears it; this bounds a lost timeout message.
        return now // 1000 + self.limits.ring_timeout_seconds + 120

    def _get(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise NotFound("no such call")
        return call

    def _pair(
        self, call: Call, caller: Caller, to_user: str | None
    ) -> tuple[Participant, Participant]:
        """Sender (the caller's in-call connection) and target of a relayed frame."""
        sender = call.participant(caller.user_id)
        if not call.live or sender.state is not PartState.JOINED:
            raise CallConflict("call_over", "you are not in this call")
        if sender.connection_id != caller.connection_id:
            raise Forbidden("only your in-call connection can signal in this call")
        if to_user is None:
            others = [p for p in call.in_call() if p.user_id != caller.user_id]
            if call.group or len(others) != 1:
                raise BadRequest("toUserId is required in a group call")
            return sender, others[0]
        target = call.participants.get(to_user)
        if target is None or target.user_id == sender.user_id:
            raise BadRequest("toUserId is not another participant of this call")
        if not target.in_call:
            raise CallConflict("peer_left", "that participant is no longer in the call")
        return sender, target

    def _relay(
        self,
        caller: Caller,
        call_id: str,
        to_user: str | None,
        event: str,
        key: str,
        value: dict[str, Any],
    ) -> dict[str, Any]:
        call = self._get(call_id)
        sender, target = self._pair(call, caller, to_user)
        if target.state is not PartState.JOINED or not target.connection_id:
            raise CallConflict("peer_not_joined", "that participant has not joined yet")
        self._push_to(call, sender, target, event, key, value)
        return {"callId": call.call_id, "sent": True}

    def _push_to(
        self,
        call: Call,
        sender: Participant,
        target: Participant,
        event: str,
        key: str,
        value: dict[str, Any],
    ) -> None:
        """A signaling frame to the target's in-call connection only (never its other
        devices: they are not in the call)."""
        if target.connection_id is None:
            return
        frame = push(event, {"callId": call.call_id, key: value, "fromUserId": sender.user_id})
        self.delivery.to_connections({target.connection_id: target.user_id}, frame)

    def _flush_pending(self, before: Call, caller: Caller) -> None:
        """Candidates sent to this user before they joined, to the device that joined."""
        queued = before.pending_ice.get(caller.user_id) or []
        if not queued:
            return
        frames = [
            push("call:ice-candidate", {"callId": before.call_id, **entry}) for entry in queued
        ]
        # Sequential, in order, to one connection.
        targets = {caller.connection_id: caller.user_id}
        for frame in frames:
            self.delivery.to_connections(targets, frame)

    def _transition(
        self,
        call_id: str,
        change: Callable[[Call], Call],
        actor_connection: str | None,
    ) -> tuple[Call, Call]:
        """Read, apply, write on the read version; on a lost race, read again. The users'
        "active call" items follow in the same transaction: taken by new invitees (busy is
        race-free), refreshed for who joins, released by whoever is out."""
        for _ in range(SAVE_ATTEMPTS):
            before = self._get(call_id)
            after = change(before)
            if after == before:
                return before, after
            now = self._now()
            after = replace(after, version=before.version + 1)
            was = before.participants
            try:
                busy = self.calls.save(
                    after,
                    expected_version=before.version,
                    now_ms=now,
                    release=[
                        u
                        for u, p in after.participants.items()
                        if not p.in_call and u in was and was[u].in_call
                    ],
                    acquire=[
                        u
                        for u, p in after.participants.items()
                        if p.in_call and not (u in was and was[u].in_call)
                    ],
                    hold=[
                        u
                        for u, p in after.participants.items()
                        if p.state is PartState.JOINED
                        and u in was
                        and was[u].state is not PartState.JOINED
                    ],
                    ringing_until=self._ringing_until(now),
                    in_call_until=self._in_call_until(now),
                )
            except StaleCall:
                continue
            if busy:
                raise CalleeBusy(busy)
            self._deliver(pushes(before, after, actor_connection))
            return before, after
        raise Conflict("the call changed too often; retry")

    def _in_call_until(self, now: int) -> int:
        # A connection lives at most 2 h (API Gateway); its $disconnect ends the call.
        return now // 1000 + 3 * 3600

    def _deliver(self, items: list[Push]) -> None:
        for item in items:
            if item.connection_id is not None:
                self.delivery.to_connections({item.connection_id: item.user_id}, item.frame)
            else:
                self.delivery.to_users(
                    [item.user_id], item.frame, exclude_connection=item.exclude_connection
                )


class _NothingToDo(Exception):
    pass


class _PeerAnswered(Exception):
    pass


def _one_to_one(call: Call) -> Call:
    if call.group:
        raise BadRequest("a group call is joined with call:join; call:answer needs toUserId")
    return call
