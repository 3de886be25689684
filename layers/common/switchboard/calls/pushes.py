"""Which frames go where after a call changed: derived from the difference between the
call before and after a transition, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard.calls.model import Call, CallState, Participant, PartState
from switchboard.protocol import push
from switchboard.wire import calls as wire


@dataclass(frozen=True, slots=True)
class Push:
    """A frame for one user: to one connection, or to all their devices but one."""

    user_id: str
    frame: dict[str, Any]
    connection_id: str | None = None
    exclude_connection: str | None = None


def incoming_frame(call: Call) -> dict[str, Any]:
    offer = None if call.group or call.offer is None else wire.Sdp.model_validate(call.offer)
    return push(
        wire.CallIncoming(
            callId=call.call_id,
            callerId=call.caller_id,
            media=call.media,
            offer=offer,
            group=call.group,
            participants=call.participants_wire(),
            conversationId=call.conversation_id,
        )
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
            if before is not None and user_id in before.recording:
                plan.stopped_recording(after, user_id)
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
                wire.CallRejected(
                    callId=self.call_id,
                    userId=rejecter.user_id if rejecter else None,
                    reason=rejecter.reason if rejecter else None,
                )
            )
        else:
            reason = after.end_reason or after.state.value
            frame = push(wire.CallEnded(callId=self.call_id, reason=reason))
        for part in before.in_call():
            self.tell(part, frame)

    def joined(self, after: Call, part: Participant) -> None:
        self.out.append(
            Push(
                part.user_id,
                push(wire.CallAnsweredElsewhere(callId=self.call_id, userId=part.user_id)),
                exclude_connection=part.connection_id,
            )
        )
        if after.group:
            frame = push(wire.CallParticipantJoined(callId=self.call_id, userId=part.user_id))
            for other in after.joined():
                if other.user_id != part.user_id:
                    self.tell(other, frame)

    def left(self, after: Call, was: Participant, now_part: Participant) -> None:
        ended = push(wire.CallEnded(callId=self.call_id, reason=now_part.reason))
        if was.state is PartState.INVITED:
            # The user's other devices stop ringing.
            if now_part.state is PartState.REJECTED:
                rejected = wire.CallRejected(
                    callId=self.call_id, userId=was.user_id, reason=now_part.reason
                )
                self.tell(was, push(rejected))
            else:
                self.tell(was, ended)
        elif was.connection_id != self.actor:  # hung up from another device, or timed out
            self.tell(was, ended)
        left = wire.CallParticipantLeft(
            callId=self.call_id, userId=was.user_id, reason=now_part.reason
        )
        for other in after.joined():
            self.tell(other, push(left))

    def stopped_recording(self, after: Call, user_id: str) -> None:
        """Whoever leaves stops recording: the others' indicators must not stay on."""
        frame = push(
            wire.CallRecordingPush(
                callId=self.call_id,
                userId=user_id,
                state="stopped",
                recording=list(after.recording),
            )
        )
        for other in after.joined():
            self.tell(other, frame)
