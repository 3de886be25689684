"""The call service: reads a call, applies one transition of the machine and writes it back
on the condition that the call's ``version`` is unchanged (of two devices answering at
once exactly one write wins; the loser re-reads and gets ``conflict``), then sends the
frames of the push plan."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from switchboard.calls import entries
from switchboard.calls.model import (
    AlreadyInCall,
    Call,
    CallConflict,
    CalleeBusy,
    CallState,
    Participant,
    PartState,
    add_pending_candidate,
    decline,
    invite,
    join,
    leave,
    miss,
    set_media,
    set_recording,
    start,
)
from switchboard.calls.pushes import Push, pushes
from switchboard.calls.repository import StaleCall
from switchboard.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    conversation_not_found,
)
from switchboard.observability import logger
from switchboard.protocol import PushData, push
from switchboard.queues import NotificationJob, RingTimeout
from switchboard.wire import calls as wire

if TYPE_CHECKING:
    from switchboard.calls.repository import CallRepository
    from switchboard.dal.conversations import Conversation, ConversationRepository
    from switchboard.dal.ratelimits import RateLimiter
    from switchboard.delivery import Delivery
    from switchboard.queues import NotificationQueue, RingTimeoutQueue
    from switchboard.router import Caller
    from switchboard.turn import IceServers

SAVE_ATTEMPTS = 6


@dataclass(frozen=True, slots=True)
class CallLimits:
    ring_timeout_seconds: int = 30
    max_participants: int = 4
    # call:initiate and call:invite per user and minute (0: none; the functions that only
    # end or time out calls place none)
    calls_per_minute: int = 0


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
        counters: RateLimiter | None = None,
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
        self.counters = counters
        self._clock = clock
        self._new_id = new_id

    def now(self) -> int:
        return int(self._clock() * 1000)

    # ------------------------------------------------------------------ actions
    def initiate(self, caller: Caller, data: wire.CallInitiate) -> wire.CallStarted:
        callees = data.callees
        conversation = None
        if data.conversationId is not None:
            conversation = self.conversations.get(data.conversationId)
            if conversation is None or caller.user_id not in conversation.members:
                # a non-member learns nothing of it: not whether it exists, nor its members
                raise conversation_not_found()
            if not set(callees) <= conversation.members:
                raise Forbidden("every participant must be a member of the conversation")
        now = self.now()
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
        # After the call is validated (start() is pure), before anything is written.
        self._check_consent(caller, callees, conversation, present=[caller.user_id])
        self._count_ring(caller, now)
        # Scheduled before the call is stored: a timeout for a call that was never stored
        # (refused as busy or already in a call, or a write that failed) finds nothing to
        # end, while a stored call whose timeout was lost to a crash or a failed send
        # between the two steps would ring on. A refusal therefore costs one no-op
        # message on the timeout queue, and nothing else.
        self.ring_timeouts.schedule(
            RingTimeout(call.call_id, callees), self.limits.ring_timeout_seconds
        )
        busy = self.calls.create(call, self._ringing_until(now))
        if busy:
            if caller.user_id in busy:
                raise AlreadyInCall()  # nothing was written; the timeout will find nothing
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
        return _started(call)

    def _count_ring(self, caller: Caller, now: int) -> None:
        """A call placed or an invitation rings devices and queues a ring timeout: at most
        ``calls_per_minute`` a user (one conditional counter update, after consent, before
        anything else; a refused one changes nothing), even between contacts."""
        if self.counters is None or not self.limits.calls_per_minute:
            return
        from switchboard.dal.ratelimits import RateLimit

        rule = RateLimit(f"call#user#{caller.user_id}", self.limits.calls_per_minute, 60)
        if not self.counters.consume(rule, now):
            raise RateLimited(
                f"rate limit reached: at most {rule.limit} calls per {rule.window_seconds} s",
                details={"retryAfterMs": rule.retry_after_ms(now)},
            )

    def _check_consent(
        self,
        caller: Caller,
        callees: Sequence[str],
        conversation: Conversation | None,
        *,
        present: Collection[str],
    ) -> None:
        """A call rings only people who accept the caller: contacts, or members who
        accepted the conversation it is placed in (the caller too), and never someone who
        blocked the caller. Nor does it put two people with a block between them (either
        way) in one call: a call is a mesh, its participants exchange SDP and ICE
        candidates, so IP addresses, pairwise; ``present`` are who is in the call besides
        the callees (the caller; for an invite, everyone still in it). One refusal
        (membership.REFUSED) for all, decided on the same reads (one BatchGetItem of
        everyone's block list), so a block cannot be told from a stranger, and the inviter
        does not learn who blocked whom."""
        from switchboard.membership import REFUSED, Consent

        consent = Consent(self.conversations, self.delivery)
        if conversation is not None:
            accepted = conversation.accepted()
            strangers = {c for c in callees if c not in accepted}
            if caller.user_id not in accepted:
                strangers = set(callees)
        else:
            strangers = set(callees)
        everyone = sorted({*callees, *present, caller.user_id})
        states = self.delivery.users.presence(everyone, consent=True)
        strangers -= consent.contacts(caller.user_id, strangers) if strangers else set()
        if strangers or any(
            other != callee and (other in states[callee].blocked or callee in states[other].blocked)
            for callee in callees
            for other in everyone
        ):
            raise Forbidden(REFUSED)

    def answer(self, caller: Caller, data: wire.CallAnswer) -> wire.CallAnswerReply:
        answer = wire.Sdp.model_validate(data.answer.model_dump(exclude_none=True))

        def signal(call_id: str, from_user: str) -> wire.CallAnswered:
            return wire.CallAnswered(callId=call_id, answer=answer, fromUserId=from_user)

        if data.toUserId is not None:
            self._relay(caller, data.callId, data.toUserId, signal)
            return wire.CallAnswerReply(callId=data.callId, sent=True)
        before, after = self.transition(
            data.callId,
            lambda call: join(_one_to_one(call), caller.user_id, caller.connection_id, self.now()),
            caller.connection_id,
        )
        if after == before:
            # Already in the call on this device: the answer to a renegotiation offer.
            self._relay(caller, data.callId, None, signal)
            return wire.CallAnswerReply(callId=data.callId, sent=True)
        peer = after.participants[after.caller_id]
        if peer.connection_id:
            me = after.participants[caller.user_id]
            self._push_to(after, me, peer, signal)  # dropped if a block keeps them apart
        self._flush_pending(before, caller)
        self._unless_closed(after, caller)
        return wire.CallAnswerReply(callId=after.call_id, state=_state(after))

    def join(self, caller: Caller, data: wire.CallRef) -> wire.CallStarted:
        def change(call: Call) -> Call:
            if not call.group:
                raise BadRequest("a 1:1 call is accepted with call:answer")
            return join(call, caller.user_id, caller.connection_id, self.now())

        before, after = self.transition(data.callId, change, caller.connection_id)
        self._flush_pending(before, caller)
        if after != before:
            self._unless_closed(after, caller)
        return _started(after)

    def reject(self, caller: Caller, data: wire.CallReject) -> wire.CallStateReply:
        reason = data.reason or "declined"
        _, after = self.transition(
            data.callId,
            lambda call: decline(call, caller.user_id, self.now(), reason),
            caller.connection_id,
        )
        return wire.CallStateReply(callId=after.call_id, state=_state(after))

    def end(self, caller: Caller, data: wire.CallRef) -> wire.CallStateReply:
        _, after = self.transition(
            data.callId,
            lambda call: leave(call, caller.user_id, self.now()),
            caller.connection_id,
        )
        return wire.CallStateReply(callId=after.call_id, state=_state(after))

    def invite(self, caller: Caller, data: wire.CallInvite) -> wire.CallInvited:
        if caller.user_id in data.userIds:
            raise BadRequest("you cannot invite yourself")
        # A call placed in a conversation rings in its members only, as call:initiate
        # does (asked of a joined participant only: nobody else learns of the conversation).
        call = self._get(data.callId)
        conversation = None
        me = call.participants.get(caller.user_id)
        joined = me is not None and me.state is PartState.JOINED
        if call.conversation_id is not None and joined:
            conversation = self.conversations.get(call.conversation_id)
            if conversation is None or not set(data.userIds) <= conversation.members:
                raise Forbidden("every participant must be a member of the conversation")
        # Blocks are checked against everyone in the call (asked of a joined participant
        # only: nobody else learns anything of who is in it).
        present = {p.user_id for p in call.in_call()} if joined else {caller.user_id}
        self._check_consent(caller, data.userIds, conversation, present=present)
        self._count_ring(caller, self.now())

        def change(current: Call) -> Call:
            after = invite(
                current, caller.user_id, data.userIds, self.now(), self.limits.max_participants
            )
            # Someone in the call who was not checked against these invitees (another
            # member's concurrent invite came in; or the inviter was still ringing when the
            # call was read, so only they were checked, and joined since): a retry checks all.
            if after is not current and (
                {p.user_id for p in current.in_call()} - present - set(data.userIds)
            ):
                raise Conflict("the call changed; retry")
            return after

        before, after = self.transition(data.callId, change, caller.connection_id)
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
        return wire.CallInvited(callId=after.call_id, participants=after.participants_wire())

    def relay_ice(self, caller: Caller, data: wire.CallIceCandidate) -> wire.CallRelayed:
        candidate = data.candidate.model_dump(exclude_none=True)
        call = self._get(data.callId)
        sender, target = self._pair(call, caller, data.toUserId)
        if target.state is PartState.JOINED and target.connection_id:
            self._push_to(call, sender, target, partial(_candidate, candidate))
            return wire.CallRelayed(callId=call.call_id, sent=True)

        def keep(current: Call) -> Call:
            _, now_target = self._pair(current, caller, target.user_id)
            if now_target.state is not PartState.INVITED:
                raise _PeerAnswered()  # it answered meanwhile: send it directly instead
            if current.is_apart(sender.user_id, target.user_id):
                return current  # a block between them: not kept (the reply is the same)
            return add_pending_candidate(current, sender.user_id, target.user_id, candidate)

        try:
            self.transition(call.call_id, keep, caller.connection_id)
        except _PeerAnswered:
            return self.relay_ice(caller, data)
        return wire.CallRelayed(callId=call.call_id, sent=False)

    def relay_offer(self, caller: Caller, data: wire.CallOffer) -> wire.CallRelayed:
        offer = wire.Sdp.model_validate(data.offer.model_dump(exclude_none=True))

        def signal(call_id: str, from_user: str) -> wire.CallOfferPush:
            return wire.CallOfferPush(callId=call_id, offer=offer, fromUserId=from_user)

        self._relay(caller, data.callId, data.toUserId, signal)
        return wire.CallRelayed(callId=data.callId, sent=True)

    def media(self, caller: Caller, data: wire.CallMedia) -> wire.CallMediaReply:
        """Mute, camera, screen state: stored (``call:get-active`` shows it) and pushed to
        the other joined participants' in-call connections."""
        self._in_call_connection(data.callId, caller)
        _, after = self.transition(
            data.callId,
            lambda call: set_media(
                call, caller.user_id, audio=data.audio, video=data.video, screen=data.screen
            ),
            caller.connection_id,
        )
        me = after.participants[caller.user_id]
        frame = push(
            wire.CallMediaPush(callId=after.call_id, userId=me.user_id, **me.media().model_dump())
        )
        self._to_joined(after, frame, exclude=caller.user_id)
        return wire.CallMediaReply(callId=after.call_id, media=me.media())

    def recording(self, caller: Caller, data: wire.CallRecording) -> wire.CallRecordingReply:
        """Recording with consent: every joined participant is told (``call:recording``)
        and the call's conversation gets a system entry, both before the recorder's reply
        (a client starts its MediaRecorder only after it)."""
        self._in_call_connection(data.callId, caller)
        before, after = self.transition(
            data.callId,
            lambda call: set_recording(call, caller.user_id, data.state, self.now()),
            caller.connection_id,
        )
        recording = list(after.recording)
        if after != before:
            frame = push(
                wire.CallRecordingPush(
                    callId=after.call_id,
                    userId=caller.user_id,
                    state=data.state,
                    recording=recording,
                )
            )
            self._to_joined(after, frame, exclude=None)
            if after.conversation_id is not None:
                verb = "started" if data.state == "started" else "stopped"
                entries.post(
                    self.conversations,
                    self.delivery,
                    after.conversation_id,
                    user_id=caller.user_id,
                    body=f"{caller.user_id} {verb} recording the call",
                    system={
                        "event": "call:recording",
                        "callId": after.call_id,
                        "userId": caller.user_id,
                        "state": data.state,
                    },
                    dedup_key=f"call-{after.call_id}-{after.version}"[:64],
                    now=self.now(),
                )
        logger.info(
            "call recording",
            extra={"callId": after.call_id, "userId": caller.user_id, "state": data.state},
        )
        return wire.CallRecordingReply(callId=after.call_id, state=data.state, recording=recording)

    def _in_call_connection(self, call_id: str, caller: Caller) -> None:
        """Only the device that is in the call speaks for the user in it."""
        call = self._get(call_id)
        me = call.participant(caller.user_id)
        if call.live and me.state is PartState.JOINED and me.connection_id != caller.connection_id:
            raise Forbidden("only your in-call connection can do that")

    def _to_joined(self, call: Call, frame: dict[str, Any], exclude: str | None) -> None:
        targets = {
            p.connection_id: p.user_id
            for p in call.joined()
            if p.connection_id and p.user_id != exclude
        }
        self.delivery.to_connections(targets, frame)

    def get_active(self, caller: Caller) -> wire.ActiveCall:
        call_id = self.calls.active_call_id(caller.user_id, self.now())
        call = self.calls.get(call_id) if call_id else None
        if call is None or not call.live:
            return wire.ActiveCall(call=None)
        return wire.ActiveCall(call=call.wire(for_user=caller.user_id))

    def ice_servers_for(self, caller: Caller, data: wire.IceServersFor) -> wire.IceServers:
        """TURN credentials only for a call (see turn.py): the relay is no free proxy."""
        if self.ice_servers is None:
            raise NotFound("no ICE servers are configured")
        if data.callId is not None:
            call = self.calls.get(data.callId)
            mine = call.participants.get(caller.user_id) if call else None
            if call is None or mine is None:
                raise NotFound("no such call")
            if not call.live or not mine.in_call:
                raise Conflict(f"the call is {call.state.value}")
            return self.ice_servers.for_user(caller.user_id)
        if data.calleeId is not None:
            if data.calleeId == caller.user_id:
                raise BadRequest("a call needs someone else")
            # Not for any id at all (a relay credential for anyone who asks): only for
            # someone the caller may ring (the same check as call:initiate).
            self._check_consent(caller, [data.calleeId], None, present=[caller.user_id])
            self.ice_servers.count_issue(caller.user_id)
            return self.ice_servers.for_user(caller.user_id)
        return self.ice_servers.stun_only()

    # ------------------------------------------------------------------ asynchronous events
    def ring_timed_out(self, timeout: RingTimeout) -> None:
        """Invitees still ringing missed the call (idempotent: a call that moved on is
        left alone)."""
        try:
            before, after = self.transition(
                timeout.call_id, lambda call: miss(call, timeout.user_ids, self.now()), None
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
        now = self.now()
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
        signal: Signal,
    ) -> None:
        call = self._get(call_id)
        sender, target = self._pair(call, caller, to_user)
        if target.state is not PartState.JOINED or not target.connection_id:
            raise CallConflict("peer_not_joined", "that participant has not joined yet")
        self._push_to(call, sender, target, signal)

    def _push_to(
        self,
        call: Call,
        sender: Participant,
        target: Participant,
        signal: Signal,
    ) -> None:
        """A signaling frame to the target's in-call connection only (never its other
        devices: they are not in the call). Nothing between a pair that a block made
        during the call keeps apart (``calls/blocks.py``): the sender's reply is the same,
        so the blocked one is not told."""
        if target.connection_id is None or call.is_apart(sender.user_id, target.user_id):
            return
        frame = push(signal(call.call_id, sender.user_id))
        report = self.delivery.to_connections({target.connection_id: target.user_id}, frame)
        if target.connection_id in report.gone:
            self._peer_gone(call, sender, target)

    def _peer_gone(self, call: Call, sender: Participant, target: Participant) -> None:
        """A frame for a participant whose in-call connection is gone (API Gateway said
        410): the sender is told with ``call:error`` (its reply only says the frame was
        handed over), and the target's part ends as its ``$disconnect`` would end it."""
        if sender.connection_id:
            error = wire.CallError(
                callId=call.call_id,
                code="peer_gone",
                message=f"{target.user_id}'s connection is gone",
                userId=target.user_id,
            )
            self.delivery.to_connections({sender.connection_id: sender.user_id}, push(error))

        if target.connection_id is not None:
            self._part_gone(call.call_id, target.user_id, target.connection_id)

    def _unless_closed(self, call: Call, caller: Caller) -> None:
        """A join that landed after its connection closed (its frame was handled late, by
        a cold start) would hold a participant nobody can reach: the teardown that the
        connection's removal drives may have read the call before the join was written.
        Checked after the write, so the teardown or this check always sees the other."""
        if self.delivery.connections.get(caller.connection_id) is None:
            self._part_gone(call.call_id, caller.user_id, caller.connection_id)

    def _part_gone(self, call_id: str, user_id: str, connection_id: str) -> None:
        """The user's part ends as its ``$disconnect`` would end it, if it is still on
        ``connection_id``."""

        def change(current: Call) -> Call:
            part = current.participants.get(user_id)
            if part is None or part.connection_id != connection_id or not part.in_call:
                return current  # moved on meanwhile (left, or rejoined elsewhere)
            if not current.live:
                return current
            return leave(current, user_id, self.now(), reason="disconnected")

        try:
            self.transition(call_id, change, None)
        except (NotFound, Conflict):
            logger.info("gone participant already out", extra={"callId": call_id})

    def _flush_pending(self, before: Call, caller: Caller) -> None:
        """Candidates sent to this user before they joined, to the device that joined."""
        queued = [
            entry
            for entry in before.pending_ice.get(caller.user_id) or []
            if not before.is_apart(entry["fromUserId"], caller.user_id)
        ]
        if not queued:
            return
        frames = [
            push(_candidate(entry["candidate"], before.call_id, entry["fromUserId"]))
            for entry in queued
        ]
        # Sequential, in order, to one connection.
        targets = {caller.connection_id: caller.user_id}
        for frame in frames:
            self.delivery.to_connections(targets, frame)

    def transition(
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
            now = self.now()
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


# A signaling push, given the call and the sender.
Signal = Callable[[str, str], PushData]


def _candidate(candidate: dict[str, Any], call_id: str, from_user: str) -> PushData:
    return wire.CallIceCandidatePush(
        callId=call_id, candidate=wire.Candidate.model_validate(candidate), fromUserId=from_user
    )


def _state(call: Call) -> wire.CallStateName:
    return call.state.value


def _started(call: Call) -> wire.CallStarted:
    return wire.CallStarted(
        callId=call.call_id, state=_state(call), participants=call.participants_wire()
    )


class _PeerAnswered(Exception):
    pass


def _one_to_one(call: Call) -> Call:
    if call.group:
        raise BadRequest("a group call is joined with call:join; call:answer needs toUserId")
    return call
