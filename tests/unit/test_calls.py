"""The call state machine (pure): the flows of docs/protocol.md, the typed refusals, the
pushes each step produces, and a Hypothesis stateful test of random event orders (joins
from several devices, declines, hang-ups, disconnects, timeouts, invitations) against the
machine's invariants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from switchboard.calls import (
    Call,
    CallConflict,
    CallFull,
    CallState,
    PartState,
    Push,
    add_pending_candidate,
    announced_recording_ms,
    decline,
    invite,
    join,
    leave,
    miss,
    pushes,
    separate,
    set_media,
    set_recording,
    start,
)
from switchboard.errors import BadRequest, Forbidden, RateLimited, SwitchboardError

T0 = 1_700_000_000_000


def one_to_one(now: int = T0) -> Call:
    return start(
        "c1",
        "alice",
        "a-conn",
        ["bob"],
        media="video",
        group=False,
        now=now,
        max_participants=4,
        offer={"type": "offer", "sdp": "v=0"},
    )


def group(callees: list[str], now: int = T0) -> Call:
    return start(
        "g1", "alice", "a-conn", callees, media="audio", group=True, now=now, max_participants=4
    )


def types_for(items: list[Push], user: str) -> list[str]:
    return [p.frame["type"] for p in items if p.user_id == user]


# ---------------------------------------------------------------------- 1:1 flows


def test_initiate_rings_every_device_of_the_callee_with_the_offer() -> None:
    # Given a new 1:1 call
    call = one_to_one()
    # Then it rings, the caller is in on its connection, the callee is invited
    assert call.state is CallState.RINGING
    assert call.participants["alice"].state is PartState.JOINED
    assert call.participants["alice"].connection_id == "a-conn"
    assert call.participants["bob"].state is PartState.INVITED
    # And the callee's devices (all of them: no connection id) get call:incoming with the offer
    [incoming] = pushes(None, call, "a-conn")
    assert incoming.user_id == "bob" and incoming.connection_id is None
    assert incoming.frame["type"] == "call:incoming"
    assert incoming.frame["data"]["offer"] == {"type": "offer", "sdp": "v=0"}
    assert incoming.frame["data"]["callerId"] == "alice"


def test_answer_makes_the_call_active_and_stops_the_other_devices_ringing() -> None:
    call = one_to_one()
    # When bob answers on his laptop
    after = join(call, "bob", "b-laptop", T0 + 5000)
    # Then the call is active with bob's laptop as his in-call connection
    assert after.state is CallState.ACTIVE
    assert after.answered_at == T0 + 5000
    assert after.participants["bob"].connection_id == "b-laptop"
    # And bob's other devices are told it was answered elsewhere (all but the laptop)
    [elsewhere] = pushes(call, after, "b-laptop")
    assert elsewhere.frame["type"] == "call:answered-elsewhere"
    assert elsewhere.user_id == "bob" and elsewhere.exclude_connection == "b-laptop"


def test_second_device_answering_gets_conflict_answered_elsewhere() -> None:
    after = join(one_to_one(), "bob", "b-laptop", T0 + 1)
    with pytest.raises(CallConflict) as refused:
        join(after, "bob", "b-phone", T0 + 2)
    assert refused.value.reason == "answered_elsewhere"
    assert refused.value.details["reason"] == "answered_elsewhere"


def test_joining_again_from_the_in_call_device_changes_nothing() -> None:
    after = join(one_to_one(), "bob", "b-laptop", T0 + 1)
    assert join(after, "bob", "b-laptop", T0 + 2) == after
    with pytest.raises(CallConflict) as refused:
        join(after, "alice", "a-other", T0 + 2)
    assert refused.value.reason == "already_joined"


def test_answer_after_end_is_a_conflict() -> None:
    cancelled = leave(one_to_one(), "alice", T0 + 1)
    assert cancelled.state is CallState.CANCELLED
    with pytest.raises(CallConflict) as refused:
        join(cancelled, "bob", "b-phone", T0 + 2)
    assert refused.value.reason == "call_not_ringing"
    assert refused.value.code.value == "conflict"


def test_non_participant_is_forbidden() -> None:
    call = one_to_one()
    acts: list[Callable[[], Call]] = [
        lambda: join(call, "mallory", "m", T0),
        lambda: decline(call, "mallory", T0),
        lambda: leave(call, "mallory", T0),
        lambda: invite(call, "mallory", ["x"], T0, 4),
    ]
    for act in acts:
        with pytest.raises(Forbidden):
            act()


def test_reject_tells_the_caller_and_the_callees_other_devices() -> None:
    call = one_to_one()
    after = decline(call, "bob", T0 + 3000, reason="declined")
    assert after.state is CallState.REJECTED and after.end_reason == "rejected"
    assert after.ended_at == T0 + 3000 and after.duration_ms is None
    out = pushes(call, after, "b-phone")
    assert types_for(out, "alice") == ["call:rejected"]
    assert out[0].connection_id == "a-conn"
    rejected = [p for p in out if p.user_id == "bob"]
    assert rejected[0].frame["data"] == {"callId": "c1", "userId": "bob", "reason": "declined"}
    assert rejected[0].exclude_connection == "b-phone"


def test_hangup_ends_an_active_call_with_its_duration() -> None:
    active = join(one_to_one(), "bob", "b-laptop", T0 + 1000)
    ended = leave(active, "bob", T0 + 61_000)
    assert ended.state is CallState.ENDED and ended.end_reason == "hangup"
    assert ended.duration_ms == 60_000
    assert not ended.in_call()
    out = pushes(active, ended, "b-laptop")
    assert [(p.user_id, p.connection_id, p.frame["type"]) for p in out] == [
        ("alice", "a-conn", "call:ended")
    ]
    assert out[0].frame["data"]["reason"] == "hangup"


def test_disconnect_of_the_in_call_connection_ends_the_call() -> None:
    active = join(one_to_one(), "bob", "b-laptop", T0 + 1000)
    ended = leave(active, "alice", T0 + 2000, reason="disconnected")
    assert ended.end_reason == "disconnected"
    [told] = pushes(active, ended, "a-conn")
    assert (told.user_id, told.connection_id) == ("bob", "b-laptop")
    assert told.frame["data"] == {"callId": "c1", "reason": "disconnected"}


def test_ring_timeout_misses_the_call_and_tells_both_sides() -> None:
    call = one_to_one()
    missed = miss(call, ["bob"], T0 + 30_000)
    assert missed.state is CallState.MISSED and missed.end_reason == "missed"
    assert missed.participants["bob"].state is PartState.MISSED
    out = pushes(call, missed, None)
    assert sorted(types_for(out, "alice") + types_for(out, "bob")) == ["call:ended"] * 2
    # A timeout that arrives after the answer changes nothing
    active = join(call, "bob", "b", T0 + 1)
    assert miss(active, ["bob"], T0 + 30_000) == active


def test_calling_yourself_or_nobody_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        start("x", "alice", "a", ["alice"], media="audio", group=False, now=T0, max_participants=4)


def test_pending_candidates_are_bounded() -> None:
    call = one_to_one()
    for i in range(64):
        call = add_pending_candidate(call, "alice", "bob", {"candidate": f"c{i}"})
    with pytest.raises(RateLimited):
        add_pending_candidate(call, "alice", "bob", {"candidate": "one too many"})
    # The device that answers takes them (they leave the stored call)
    assert join(call, "bob", "b", T0).pending_ice == {}


def test_a_pair_kept_apart_loses_only_the_candidates_between_them() -> None:
    # Given a group call where alice and carol queued candidates for the ringing bob and
    # dave, and bob blocks alice
    call = group(["bob", "carol", "dave"])
    call = join(call, "carol", "c", T0)
    for sender, target in (("alice", "bob"), ("carol", "bob"), ("alice", "dave")):
        call = add_pending_candidate(call, sender, target, {"candidate": f"{sender}>{target}"})
    apart = separate(call, "bob", "alice")
    # Then alice's candidates for bob are gone, the others are kept, either way round
    assert apart.is_apart("alice", "bob") and apart.is_apart("bob", "alice")
    assert not apart.is_apart("alice", "dave") and not apart.is_apart("carol", "bob")
    assert [e["fromUserId"] for e in apart.pending_ice["bob"]] == ["carol"]
    assert apart.pending_ice["dave"] == call.pending_ice["dave"]
    # And marking it again changes nothing
    assert separate(apart, "alice", "bob") == apart


# ---------------------------------------------------------------------- group calls


def test_group_join_and_leave_tell_the_other_participants() -> None:
    call = group(["bob", "carol"])
    bob_in = join(call, "bob", "b", T0 + 1)
    assert bob_in.state is CallState.ACTIVE
    assert types_for(pushes(call, bob_in, "b"), "alice") == ["call:participant-joined"]
    carol_in = join(bob_in, "carol", "c", T0 + 2)
    out = pushes(bob_in, carol_in, "c")
    assert types_for(out, "alice") == ["call:participant-joined"]
    assert types_for(out, "bob") == ["call:participant-joined"]
    bob_out = leave(carol_in, "bob", T0 + 3)
    assert bob_out.state is CallState.ACTIVE  # alice and carol still talk
    out = pushes(carol_in, bob_out, "b")
    assert types_for(out, "alice") == types_for(out, "carol") == ["call:participant-left"]
    # The last pair ending ends the call for the one who stays
    over = leave(bob_out, "carol", T0 + 4)
    assert over.state is CallState.ENDED
    assert types_for(pushes(bob_out, over, "c"), "alice") == ["call:ended"]


def test_a_recorder_who_leaves_is_announced_as_stopped() -> None:
    call = join(join(group(["bob", "carol"]), "bob", "b", T0 + 1), "carol", "c", T0 + 2)
    recording = set_recording(call, "carol", "started", T0 + 3)
    # When carol leaves (or her connection closes) while recording
    out = pushes(recording, leave(recording, "carol", T0 + 4, reason="disconnected"), None)
    # Then the others are told her recording stopped, as if she had said so
    for user in ("alice", "bob"):
        assert types_for(out, user) == ["call:participant-left", "call:recording"]
    [stopped] = [p for p in out if p.user_id == "alice" and p.frame["type"] == "call:recording"]
    assert stopped.frame["data"] == {
        "callId": call.call_id,
        "userId": "carol",
        "state": "stopped",
        "recording": [],
    }
    # A participant who was not recording leaves with no such push
    out = pushes(call, leave(call, "carol", T0 + 4), "c")
    assert types_for(out, "alice") == ["call:participant-left"]


def test_media_state_is_a_joined_participants_own_and_survives_nothing_else() -> None:
    call = join(group(["bob", "carol"]), "bob", "b", T0 + 1)
    muted = set_media(call, "bob", audio=False, screen=True)
    bob = muted.participants["bob"]
    assert (bob.audio, bob.video, bob.screen) == (False, False, True)  # an audio call: no camera
    assert muted.participants["alice"] == call.participants["alice"]
    assert pushes(call, muted, "b") == []  # the service pushes call:media itself
    [wired] = [p for p in muted.wire(for_user="alice").participants if p.userId == "bob"]
    assert wired.media is not None and wired.media.screen is True
    with pytest.raises(CallConflict, match="joined"):
        set_media(call, "carol", audio=False)  # still ringing
    with pytest.raises(Forbidden):
        set_media(call, "mallory", audio=False)


def test_recording_starts_stops_and_ends_with_the_recorders_part() -> None:
    call = join(join(group(["bob", "carol"]), "bob", "b", T0 + 1), "carol", "c", T0 + 2)
    recording = set_recording(call, "carol", "started", T0 + 10)
    assert recording.recording == ("carol",) and recording.recorded_by == ("carol",)
    assert set_recording(recording, "carol", "started", T0 + 20) == recording  # no entry
    assert announced_recording_ms(recording, "carol", T0 + 510) == 500  # running
    stopped = set_recording(recording, "carol", "stopped", T0 + 1010)
    assert stopped.recording == () and stopped.recorded_by == ("carol",)  # may upload it
    assert set_recording(stopped, "carol", "stopped", T0 + 2000) == stopped
    # What was announced is what counts: 1 s, however long ago it stopped
    assert announced_recording_ms(stopped, "carol", T0 + 60_000) == 1000
    # Whoever leaves stops recording (the time until they left counts)
    again = set_recording(stopped, "bob", "started", T0 + 3000)
    left = leave(again, "bob", T0 + 3500)
    assert left.recording == () and announced_recording_ms(left, "bob", T0 + 9000) == 500
    # Another start adds to what was announced before
    more = set_recording(
        set_recording(stopped, "carol", "started", T0 + 5000), "carol", "stopped", T0 + 5250
    )
    assert announced_recording_ms(more, "carol", T0 + 9000) == 1250
    assert announced_recording_ms(more, "bob", T0 + 9000) == 0  # never recorded
    # A call's recording cannot be toggled forever (each toggle is a system entry)
    for _ in range(30):
        try:
            again = set_recording(
                set_recording(again, "bob", "started", T0 + 4000), "bob", "stopped", T0 + 4000
            )
        except RateLimited:
            break
    else:
        pytest.fail("recording toggles are not bounded")
    assert again.recording_starts == 20
    with pytest.raises(CallConflict):
        set_recording(group(["bob"]), "bob", "started", T0)  # not joined


def test_only_a_ringing_invitee_can_decline() -> None:
    # The caller does not reject its own call (it cancels it by hanging up), and a callee
    # who answered hangs up rather than rejects: both are conflicts, and nothing changes
    call = one_to_one()
    for user, state in (("alice", call), ("bob", join(call, "bob", "b", T0 + 1))):
        with pytest.raises(CallConflict) as refused:
            decline(state, user, T0 + 2)
        assert refused.value.reason == "call_not_ringing"


def test_who_declined_or_left_a_live_group_call_cannot_join_it_again() -> None:
    # Given a group call that goes on between alice and bob
    call = join(group(["bob", "carol", "dave"]), "bob", "b", T0 + 1)
    declined = decline(call, "carol", T0 + 2)
    dave_in = join(declined, "dave", "d", T0 + 3)
    dave_out = leave(dave_in, "dave", T0 + 4)
    assert dave_out.state is CallState.ACTIVE
    # Then carol (declined) and dave (left) are not ringing any more: joining is a conflict
    for user, before in (("carol", declined), ("dave", dave_out)):
        with pytest.raises(CallConflict) as refused:
            join(before, user, f"{user}-again", T0 + 5)
        assert refused.value.reason == "call_not_ringing"


def test_a_fifth_participant_is_refused_with_call_full() -> None:
    with pytest.raises(CallFull) as refused:
        group(["b", "c", "d", "e"])
    assert refused.value.details == {
        "reason": "call_full",
        "maxParticipants": 4,
    }
    call = join(group(["b", "c", "d"]), "b", "b-conn", T0)
    with pytest.raises(CallFull):
        invite(call, "b", ["e"], T0, 4)


def test_invite_rings_the_new_invitee_and_makes_the_call_a_mesh() -> None:
    call = join(one_to_one(), "bob", "b", T0 + 1)
    grown = invite(call, "bob", ["carol"], T0 + 2, 4)
    assert grown.group and grown.offer is None
    out = pushes(call, grown, "b")
    assert [(p.user_id, p.frame["type"]) for p in out] == [("carol", "call:incoming")]
    assert out[0].frame["data"]["offer"] is None


# ---------------------------------------------------------------------- random orders
USERS = ["alice", "bob", "carol", "dave", "erin"]
CONNECTIONS = ["d1", "d2"]
ALLOWED_ERRORS = (CallConflict, Forbidden, BadRequest, RateLimited)
CALL_STEPS = {
    CallState.RINGING: {
        CallState.RINGING,
        CallState.ACTIVE,
        CallState.REJECTED,
        CallState.MISSED,
        CallState.CANCELLED,
    },
    CallState.ACTIVE: {CallState.ACTIVE, CallState.ENDED},
}


class CallMachine(RuleBasedStateMachine):
    """Random events on a call. Each event either moves the call (and then the invariants
    hold, and the pushes tell exactly the right people) or is refused with a typed error
    and the call is unchanged (the machine is pure)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.call: Call = start(
            "h",
            "alice",
            "alice-d1",
            ["bob"],
            media="video",
            group=False,
            now=self.now,
            max_participants=4,
            offer={"type": "offer", "sdp": "v=0"},
        )
        self.ever_joined: set[str] = set()

    def _step(self, event: Any, actor_connection: str | None) -> None:
        self.now += 1000
        before = self.call
        try:
            after = event(before)
        except ALLOWED_ERRORS:
            return
        except SwitchboardError as exc:  # pragma: no cover - would be a bug
            raise AssertionError(f"untyped refusal {exc!r}") from exc
        self._check_step(before, after, actor_connection)
        self.call = after

    def _check_step(self, before: Call, after: Call, actor: str | None) -> None:
        # The call state only moves forward; terminal states are absorbing.
        if before.live:
            assert after.state in CALL_STEPS[before.state], (before.state, after.state)
        else:
            assert after == before
        for user_id, part in after.participants.items():
            was = before.participants.get(user_id)
            # A joined participant keeps its in-call connection until it leaves.
            if was is not None and was.state is PartState.JOINED and part.state is PartState.JOINED:
                assert part.connection_id == was.connection_id
            if part.state is PartState.JOINED and (
                was is None or was.state is not PartState.JOINED
            ):
                self.ever_joined.add(user_id)
        out = pushes(before, after, actor)
        participants = set(after.participants)
        for item in out:
            assert item.user_id in participants  # nobody outside the call hears of it
            assert item.connection_id is None or item.connection_id != actor
            if item.connection_id is not None:  # a single connection = an in-call one
                assert (
                    item.connection_id
                    == before.participants.get(
                        item.user_id, after.participants[item.user_id]
                    ).connection_id
                    or item.connection_id == after.participants[item.user_id].connection_id
                )
        if before.live and not after.live:
            # Everyone who was still in the call hears that it is over, exactly once.
            told = sorted(p.user_id for p in out)
            expected = sorted(
                p.user_id
                for p in before.in_call()
                if not (p.state is PartState.JOINED and p.connection_id == actor)
            )
            assert told == expected
            assert {p.frame["type"] for p in out} <= {"call:ended", "call:rejected"}

    # ------------------------------------------------------------------ events
    @rule(user=st.sampled_from(USERS), connection=st.sampled_from(CONNECTIONS))
    def answer(self, user: str, connection: str) -> None:
        self._step(
            lambda c: join(c, user, f"{user}-{connection}", self.now), f"{user}-{connection}"
        )

    @rule(user=st.sampled_from(USERS), connection=st.sampled_from(CONNECTIONS))
    def two_devices_answer_at_once(self, user: str, connection: str) -> None:
        # Both read the same call; the second write is applied to what the first left.
        first = f"{user}-{connection}"
        second = f"{user}-other"
        self._step(lambda c: join(c, user, first, self.now), first)
        with pytest.raises(ALLOWED_ERRORS) as refused:
            join(self.call, user, second, self.now)
        part = self.call.participants.get(user)
        if part is not None and part.state is PartState.JOINED:
            # Exactly one device wins; the other is told where the call went.
            assert isinstance(refused.value, CallConflict)
            expected = "already_joined" if part.role == "caller" else "answered_elsewhere"
            assert refused.value.reason == expected

    @rule(user=st.sampled_from(USERS))
    def reject(self, user: str) -> None:
        self._step(lambda c: decline(c, user, self.now, "declined"), f"{user}-d2")

    @rule(user=st.sampled_from(USERS), reason=st.sampled_from(["hangup", "disconnected"]))
    def hang_up(self, user: str, reason: str) -> None:
        part = self.call.participants.get(user)
        actor = part.connection_id if part and part.connection_id else f"{user}-d1"
        self._step(lambda c: leave(c, user, self.now, reason), actor)

    @rule(users=st.lists(st.sampled_from(USERS), max_size=3))
    def ring_timeout(self, users: list[str]) -> None:
        self._step(lambda c: miss(c, users, self.now), None)

    @rule(
        inviter=st.sampled_from(USERS),
        users=st.lists(st.sampled_from(USERS), min_size=1, max_size=3),
    )
    def invite_more(self, inviter: str, users: list[str]) -> None:
        users = [u for u in users if u != inviter]
        if users:
            self._step(lambda c: invite(c, inviter, users, self.now, 4), None)

    @precondition(lambda self: not self.call.live)
    @rule(user=st.sampled_from(USERS))
    def anything_after_the_end_is_refused(self, user: str) -> None:
        acts: list[Callable[[], Call]] = [
            lambda: join(self.call, user, "late", self.now),
            lambda: decline(self.call, user, self.now),
            lambda: leave(self.call, user, self.now),
        ]
        for act in acts:
            with pytest.raises(ALLOWED_ERRORS):
                act()

    # ------------------------------------------------------------------ invariants
    @invariant()
    def live_calls_have_someone_to_talk_to(self) -> None:
        call = self.call
        if call.live:
            assert len(call.in_call()) >= 2
            assert call.joined(), "a live call has at least one joined participant"
            assert call.ended_at is None
        else:
            assert not call.in_call(), "nobody is left holding an ended call"
            assert call.ended_at is not None and call.end_reason

    @invariant()
    def never_more_than_the_mesh_limit(self) -> None:
        assert len(self.call.in_call()) <= 4

    @invariant()
    def one_connection_per_joined_participant(self) -> None:
        for part in self.call.joined():
            assert part.connection_id

    @invariant()
    def answered_iff_a_callee_joined(self) -> None:
        call = self.call
        callee_joined = bool(self.ever_joined - {"alice"})
        assert (call.answered_at is not None) == callee_joined
        if call.state in (CallState.ACTIVE, CallState.ENDED):
            assert call.answered_at is not None
        if call.state in (CallState.REJECTED, CallState.MISSED, CallState.CANCELLED):
            assert call.answered_at is None
        if call.duration_ms is not None:
            assert call.duration_ms >= 0


TestCallMachine = CallMachine.TestCase
TestCallMachine.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
