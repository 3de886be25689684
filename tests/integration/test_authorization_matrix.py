"""The authorization matrix: every action x (owner, member, non-member, stranger, admin)
against its expected allow/deny, from the one table below. A new action cannot ship
without its row (the table must cover ``all_actions()`` exactly), and every denial is
checked to have done nothing, to anyone: no push on any connection, no queue message, no
write to any table (tests/support/effects.py).

- owner: created the resource (conversation, call, upload); member: another participant;
- non-member: a user with conversations of their own, not this one; stranger: a user
  who has never done anything; admin: the ``admin`` role, not a participant. Admins do
  not read private conversations: their powers are ``admin:revoke`` and the analytics API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from switchboard.wire import all_actions

from tests.integration.conftest import FakeContext, Stack, token_for
from tests.integration.test_messaging import Client, new_conversation, send
from tests.integration.test_routes_match_template import template_routes
from tests.support.effects import InProcess, Window
from tests.support.events import frame, ws_event

ROLES = ("owner", "member", "non-member", "stranger", "admin")
ALL = frozenset(ROLES)
PARTICIPANTS = frozenset({"owner", "member"})
OWNER = frozenset({"owner"})
ADMIN = frozenset({"admin"})
DENIED_CODES = {"forbidden", "not_found"}


@dataclass
class World:
    """One conversation (owner + member), a non-member with a conversation of their own,
    a stranger and an admin - each a connected device."""

    stack: Stack
    modules: dict[str, ModuleType]
    routes: dict[str, str | None]
    people: dict[str, Client]
    conversation: str
    group: str  # owner's group with member and friend (a contact of the owner's)
    friend: Client
    uploads: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    victims: list[Client] = field(default_factory=list)

    def new_victim(self) -> str:
        """A connected user for admin:revoke to aim at (a denied revoke must change
        neither their user item nor their connection)."""
        connect = self.modules["ConnectionFunction"]
        victim = Client(self.stack, connect, connect, f"victim-{uuid.uuid4().hex[:6]}")
        self.victims.append(victim)
        return victim.user_id

    def new_upload(self) -> str:
        """A fresh upload of the owner's (each cell gets its own, so no cell's outcome
        depends on another's: an abort in one cannot turn the next into not_found)."""
        reply = self.call(
            "owner",
            "upload:start",
            {"fileName": "a.png", "contentType": "image/png", "size": 1024},
        )
        assert reply["ok"], reply
        upload_id: str = reply["data"]["uploadId"]
        self.uploads.append(upload_id)
        return upload_id

    def new_message(self) -> int:
        """A fresh message of the owner's (each cell gets its own: a delete in one cell
        cannot turn the next cell's edit into a conflict)."""
        seq: int = send(self.people["owner"], self.conversation, "to change")["seq"]
        return seq

    def hang_up(self) -> None:
        """Ends whatever call the owner and the member are still in (one call at a time)."""
        for role in ("owner", "member"):
            active = self.call(role, "call:get-active", {})["data"]["call"]
            if active:
                assert self.call(role, "call:end", {"callId": active["callId"]})["ok"]

    def new_group(self, *, with_friend: bool = True) -> str:
        """A fresh group of the owner's with the member (and the friend): each cell that
        changes membership gets its own, so no cell depends on another's outcome."""
        # without the friend: with a stranger instead (a request for them), still a group
        third = self.friend.user_id if with_friend else f"x-{uuid.uuid4().hex[:6]}"
        others = [self.people["member"].user_id, third]
        reply = self.call("owner", "conversation:create", {"members": others})
        assert reply["ok"], reply
        group: str = reply["data"]["conversationId"]
        # A group is an invitation for everyone in it: the member (and the friend) accept
        assert self.call("member", "conversation:accept", {"conversationId": group})["ok"]
        if with_friend:
            self.friend.ok("conversation:accept", {"conversationId": group})
        return group

    def new_call(self, *, group: bool = False) -> str:
        """A fresh call from the owner to the member (each cell gets its own)."""
        self.hang_up()
        member = self.people["member"].user_id
        data: dict[str, Any] = (
            {"calleeIds": [member], "media": "audio"}
            if group
            else {"calleeId": member, "media": "audio", "offer": OFFER}
        )
        reply = self.call("owner", "call:initiate", data)
        assert reply["ok"], reply
        call_id: str = reply["data"]["callId"]
        self.calls.append(call_id)
        return call_id

    def call(self, role: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
        client = self.people[role]
        module = self.modules[self.routes[action] or ""]
        event = ws_event(
            action,
            body=frame(action, data),
            connection_id=client.connection_id,
            user_id=client.user_id,
            roles="admin" if role == "admin" else "",
        )
        reply: dict[str, Any] = json.loads(module.lambda_handler(event, FakeContext())["body"])
        return reply

    def window(self) -> Window:
        """Watches every effect from now on; the report names the people's connections."""
        names = {c.connection_id: role for role, c in self.people.items()}
        names |= {v.connection_id: f"victim {v.user_id}" for v in self.victims}
        return InProcess().window(names)


Data = Callable[[World, str], dict[str, Any]]
OFFER = {"type": "offer", "sdp": "v=0\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\n"}


def conv(extra: dict[str, Any] | None = None) -> Data:
    return lambda w, _role: {"conversationId": w.conversation, **(extra or {})}


def peer(w: World, role: str) -> str:
    """Whom a role calls: the owner and the member each other, everyone else the owner."""
    return w.people["member" if role == "owner" else "owner"].user_id


# action -> (who is allowed, the request's data for a role)
MATRIX: dict[str, tuple[frozenset[str], Data]] = {
    "ping": (ALL, lambda w, r: {}),
    "auth:refresh": (
        ALL,
        lambda w, r: {"token": token_for(w.people[r].user_id, ("admin",) if r == "admin" else ())},
    ),
    "admin:revoke": (ADMIN, lambda w, r: {"userId": w.new_victim()}),
    "conversation:create": (ALL, lambda w, r: {"members": [f"x-{uuid.uuid4().hex[:6]}"]}),
    "conversation:list": (ALL, lambda w, r: {}),
    "message:send": (
        PARTICIPANTS,
        lambda w, r: {
            "conversationId": w.conversation,
            "clientMessageId": uuid.uuid4().hex,
            "body": f"from {r}",
        },
    ),
    "message:ack": (PARTICIPANTS, conv({"seq": 1})),
    "message:read": (PARTICIPANTS, conv({"seq": 1})),
    "message:sync": (PARTICIPANTS, lambda w, r: {"cursors": {w.conversation: 0}}),
    "message:history": (PARTICIPANTS, conv()),
    # a search named to a conversation reads it only for members (a search without one
    # reads only the caller's own index: tests/integration/test_search.py)
    "message:search": (PARTICIPANTS, conv({"query": "first"})),
    # edit and delete: the sender alone (the owner sent the message); react: any member
    "message:edit": (
        OWNER,
        lambda w, r: {"conversationId": w.conversation, "seq": w.new_message(), "body": r},
    ),
    "message:delete": (
        OWNER,
        lambda w, r: {"conversationId": w.conversation, "seq": w.new_message()},
    ),
    "message:react": (
        PARTICIPANTS,
        lambda w, r: {"conversationId": w.conversation, "seq": w.new_message(), "emoji": "👍"},
    ),
    "message:changes": (PARTICIPANTS, conv({"afterChange": 0})),
    "thread:history": (PARTICIPANTS, conv({"parentSeq": 1})),
    "conversation:mute": (PARTICIPANTS, conv({"until": 2**50})),
    "typing:start": (PARTICIPANTS, conv()),
    "typing:stop": (PARTICIPANTS, conv()),
    "presence:query": (PARTICIPANTS, lambda w, r: {"userIds": [w.people["owner"].user_id]}),
    "preferences:get": (ALL, lambda w, r: {}),
    "preferences:set": (ALL, lambda w, r: {"digestMinutes": 30}),
    # one's own address only (the caller's preferences): nobody has a code to enter here
    "preferences:verify-email": (ALL, lambda w, r: {"code": "000000"}),
    "notification:list": (ALL, lambda w, r: {}),
    "notification:read": (ALL, lambda w, r: {"notificationIds": ["n-not-yours"]}),
    # uploads belong to their owner alone (others get not_found: an id is no proof)
    "upload:start": (
        ALL,
        lambda w, r: {"fileName": "a.pdf", "contentType": "application/pdf", "size": 2048},
    ),
    "upload:part-done": (
        OWNER,
        lambda w, r: {"uploadId": w.new_upload(), "partNumber": 1, "etag": '"0123abcd"'},
    ),
    "upload:complete": (OWNER, lambda w, r: {"uploadId": w.new_upload()}),
    "upload:abort": (OWNER, lambda w, r: {"uploadId": w.new_upload()}),
    "upload:get": (OWNER, lambda w, r: {"uploadId": w.new_upload()}),
    # calls: owner = the caller, member = the callee; only participants may act on a call
    # (for them a state refusal such as conflict is fine: it is not a denial)
    # a call rings only contacts: the owner and the member are, nobody else is theirs
    "call:initiate": (
        PARTICIPANTS,
        lambda w, r: (
            w.hang_up(),
            {"calleeId": peer(w, r), "media": "audio", "offer": OFFER},
        )[1],
    ),
    "call:answer": (PARTICIPANTS, lambda w, r: {"callId": w.new_call(), "answer": ANSWER}),
    "call:reject": (PARTICIPANTS, lambda w, r: {"callId": w.new_call()}),
    "call:end": (PARTICIPANTS, lambda w, r: {"callId": w.new_call()}),
    "call:leave": (PARTICIPANTS, lambda w, r: {"callId": w.new_call()}),
    "call:join": (PARTICIPANTS, lambda w, r: {"callId": w.new_call(group=True)}),
    "call:invite": (
        PARTICIPANTS,
        lambda w, r: {"callId": w.new_call(), "userIds": [w.friend.user_id]},
    ),
    "call:offer": (PARTICIPANTS, lambda w, r: {"callId": w.new_call(), "offer": OFFER}),
    "call:ice-candidate": (
        PARTICIPANTS,
        lambda w, r: {"callId": w.new_call(), "candidate": {"candidate": "candidate:1"}},
    ),
    "call:get-active": (ALL, lambda w, r: {}),
    # TURN credentials only to the participants of a live call
    "call:ice-servers": (PARTICIPANTS, lambda w, r: {"callId": w.new_call()}),
    "call:media": (PARTICIPANTS, lambda w, r: {"callId": w.new_call(), "audio": False}),
    "call:recording": (
        PARTICIPANTS,
        lambda w, r: {"callId": w.new_call(), "state": "started"},
    ),
    # consent and membership: on the 1:1 conversation (accept/decline of a conversation
    # one accepted already is a no-op) or on a fresh group of the owner's
    "conversation:accept": (PARTICIPANTS, conv()),
    "conversation:decline": (PARTICIPANTS, conv()),
    "conversation:leave": (PARTICIPANTS, lambda w, r: {"conversationId": w.new_group()}),
    "conversation:add-members": (
        OWNER,
        lambda w, r: {
            "conversationId": w.new_group(with_friend=False),
            "members": [w.friend.user_id],
        },
    ),
    "conversation:remove-member": (
        OWNER,
        lambda w, r: {"conversationId": w.new_group(), "userId": w.friend.user_id},
    ),
    "conversation:set-role": (
        OWNER,
        lambda w, r: {"conversationId": w.new_group(), "userId": w.friend.user_id, "role": "admin"},
    ),
    "conversation:set-title": (
        OWNER,
        lambda w, r: {"conversationId": w.group, "title": f"renamed by {r}"},
    ),
    # one's own block list only
    "user:block": (ALL, lambda w, r: {"userId": f"x-{uuid.uuid4().hex[:6]}"}),
    "user:unblock": (ALL, lambda w, r: {"userId": f"x-{uuid.uuid4().hex[:6]}"}),
    "user:blocks": (ALL, lambda w, r: {}),
}


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    routes = template_routes(stack)
    # The membership cells each create a fresh group, the call cells each place a call:
    # no create or call rate limit in the way.
    modules = {
        function: stack.handler(
            function, CREATE_LIMIT_PER_USER="1000", CALL_LIMIT_PER_MINUTE="100000"
        )
        for function in {f for key, f in routes.items() if f and not key.startswith("$")}
    }
    connect, message = modules["ConnectionFunction"], modules["MessageFunction"]
    tag = uuid.uuid4().hex[:6]
    people = {role: Client(stack, message, connect, f"{role}-{tag}") for role in ROLES}
    conversation = new_conversation(people["owner"], people["member"])
    send(people["owner"], conversation, "first")
    new_conversation(people["non-member"], Client(stack, message, connect, f"other-{tag}"))
    friend = Client(stack, message, connect, f"friend-{tag}")
    new_conversation(people["owner"], friend)  # the owner's contact
    group = new_conversation(people["owner"], people["member"], friend)
    return World(stack, modules, routes, people, conversation, group, friend)


def test_the_matrix_covers_every_action() -> None:
    assert set(MATRIX) == set(all_actions()), (
        "add a row to MATRIX for every new action (and remove rows of removed ones)"
    )


# Allowed callers whose request the state refuses (the cell's fresh resource is in a
# state where the action makes no sense for that participant): (action, role) -> code.
TOLERATED = {
    ("call:answer", "owner"): "conflict",  # a caller does not answer its own call
    ("call:reject", "owner"): "conflict",  # a caller ends (cancels) rather than rejects
    ("call:ice-candidate", "member"): "conflict",  # the callee relays ICE once it answered
    ("call:offer", "owner"): "conflict",  # renegotiation needs the callee joined
    ("call:offer", "member"): "conflict",  # ... and the callee in the call
    ("call:invite", "member"): "conflict",  # only a joined participant invites
    ("call:media", "member"): "conflict",  # ringing: nothing sent yet
    ("call:recording", "member"): "conflict",  # only a joined participant records
    ("upload:complete", "owner"): "conflict",  # nothing was uploaded to the URL yet
    ("upload:part-done", "owner"): "bad_request",  # a small upload is one PUT, no parts
    # no address is waiting for verification (the code is never right)
    **{("preferences:verify-email", role): "bad_request" for role in ROLES},
}

CELLS = [(action, role) for action in sorted(MATRIX) for role in ROLES]


@pytest.mark.parametrize(("action", "role"), CELLS)
def test_authorization_cell(world: World, action: str, role: str) -> None:
    allowed, data = MATRIX[action]
    request = data(world, role)
    window = world.window()
    reply = world.call(role, action, request)
    if role in allowed:
        # Allowed means it works - except where the resource's state, not the caller,
        # refuses (listed, each with its one expected code).
        expected = TOLERATED.get((action, role))
        assert reply["ok"] or reply["error"]["code"] == expected, reply
    else:
        assert not reply["ok"], f"{role} may not {action}: {reply}"
        assert reply["error"]["code"] in DENIED_CODES, reply
        if role not in PARTICIPANTS and ("conversationId" in request or "cursors" in request):
            # to anyone not in it, a conversation is one that does not exist
            assert reply["error"] == {"code": "not_found", "message": "conversation not found"}
        window.assert_nothing_happened(f"{action} by the {role}")


# ---------------------------------------------------------------------- voice and recordings
VOICE = {"fileName": "v.webm", "contentType": "audio/webm", "size": 2048, "purpose": "voice"}
RECORDING = {"fileName": "r.webm", "contentType": "video/webm", "size": 4096}


@pytest.mark.parametrize("role", ROLES)
def test_a_voice_upload_is_for_members_of_its_conversation(world: World, role: str) -> None:
    window = world.window()
    reply = world.call(role, "upload:start", {**VOICE, "conversationId": world.conversation})
    if role in PARTICIPANTS:
        assert reply["ok"], reply
        world.uploads.append(reply["data"]["uploadId"])
    else:
        # not_found, as for a conversation that does not exist (a non-member learns
        # nothing of it: tests/integration/test_conversation_oracle.py)
        assert reply["error"]["code"] == "not_found", reply
        window.assert_nothing_happened(f"a voice upload by the {role}")


def test_a_recording_upload_is_for_participants_who_announced_it(world: World) -> None:
    # Given a call in the conversation, the owner in it and recording (announced)
    world.hang_up()
    member = world.people["member"].user_id
    started = world.call(
        "owner",
        "call:initiate",
        {"calleeIds": [member], "media": "video", "conversationId": world.conversation},
    )
    assert started["ok"], started
    call_id = started["data"]["callId"]
    world.calls.append(call_id)
    assert world.call("owner", "call:recording", {"callId": call_id, "state": "started"})["ok"]
    data = {**RECORDING, "purpose": "recording", "callId": call_id}
    # Then the recorder may upload the recording
    reply = world.call("owner", "upload:start", data)
    assert reply["ok"], reply
    world.uploads.append(reply["data"]["uploadId"])
    # And nobody else may: not the participant who announced none (consent), not anyone
    # outside the call - and a refusal does nothing to anyone
    for role in ("member", "non-member", "stranger", "admin"):
        window = world.window()
        refused = world.call(role, "upload:start", data)
        assert refused["error"]["code"] == "forbidden", (role, refused)
        window.assert_nothing_happened(f"a recording upload by the {role}")
    world.hang_up()


# A former member (left with conversation:leave) of a group: for the message operations,
# a cell of its own. Their own message (seq 1, sent before they left) is the target, so a
# refusal cannot come from "only its sender" or "no such message".
FORMER_MEMBER_CELLS: dict[str, dict[str, Any]] = {
    "message:edit": {"seq": 1, "body": "after I left"},
    "message:delete": {"seq": 1},
    "message:react": {"seq": 1, "emoji": "👍"},
    "message:changes": {"afterChange": 0},
    "thread:history": {"parentSeq": 1},
    "conversation:mute": {"until": 2**50},
}


@pytest.fixture(scope="module")
def former_member(world: World) -> tuple[Client, str]:
    message, connect = world.modules["MessageFunction"], world.modules["ConnectionFunction"]
    former = Client(world.stack, message, connect, f"former-{uuid.uuid4().hex[:6]}")
    group = new_conversation(world.people["owner"], world.people["member"], former)
    send(former, group, "mine, before I left")
    world.people["owner"].ok("message:react", {"conversationId": group, "seq": 1, "emoji": "👀"})
    former.ok("conversation:leave", {"conversationId": group})
    return former, group


def test_the_former_member_cells_are_the_message_operations() -> None:
    operations = {a for a in all_actions() if a.startswith(("message:", "thread:"))}
    operations -= {"message:send", "message:ack", "message:read", "message:sync"}
    operations -= {"message:history", "message:search"}
    assert set(FORMER_MEMBER_CELLS) == operations | {"conversation:mute"}


@pytest.mark.parametrize("action", sorted(FORMER_MEMBER_CELLS))
def test_a_former_member_is_denied_message_operations(
    world: World, former_member: tuple[Client, str], action: str
) -> None:
    former, group = former_member
    window = world.window()
    reply = former.call(action, {"conversationId": group, **FORMER_MEMBER_CELLS[action]})
    assert not reply["ok"], f"a former member may not {action}: {reply}"
    # not_found, as for anyone not in it: these read the conversation alone, and telling
    # a former member from a stranger would take a read of their member item
    assert reply["error"] == {"code": "not_found", "message": "conversation not found"}, reply
    window.assert_nothing_happened(f"{action} by a former member")


def test_a_former_member_starts_no_voice_upload_there(
    world: World, former_member: tuple[Client, str]
) -> None:
    former, group = former_member
    upload = Client(
        world.stack,
        world.modules["UploadFunction"],
        world.modules["ConnectionFunction"],
        former.user_id,
    )
    window = world.window()
    reply = upload.call("upload:start", {**VOICE, "conversationId": group})
    # forbidden (they know the conversation: it is in their history), and nothing done
    assert reply["error"] == {
        "code": "forbidden",
        "message": "you are no longer a member of this conversation",
    }, reply
    window.assert_nothing_happened("a voice upload by a former member")
