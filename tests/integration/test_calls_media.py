"""Calls people use, in-process under moto: mute/camera/screen state (``call:media``),
recording with consent (``call:recording``: pushes and system entries), ``call:error``
for a peer whose connection is gone, and the voice-message / recording uploads (real
audio/video containers, verified by the processor, durations read from them)."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.awsrequest import AWSResponse

from tests.integration.conftest import Stack
from tests.integration.test_messaging import Client, befriend
from tests.integration.test_uploads import run_processor, upload_record
from tests.support.effects import InProcess
from tests.support.images import http

MEDIA = Path(__file__).parent.parent / "support" / "media"
VOICE_WEBM = (MEDIA / "voice.webm").read_bytes()  # 1.5 s of Opus (ffmpeg, piped: no Duration)
VOICE_OGG = (MEDIA / "voice.ogg").read_bytes()  # 1.5 s of Ogg Opus
RECORDING = (MEDIA / "recording.webm").read_bytes()  # 2 s of VP8 + Opus, no Duration


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "signaling": stack.handler("SignalingFunction", STUN_URLS=""),
        "connect": stack.handler("ConnectionFunction"),
        "message": stack.handler("MessageFunction"),
        "upload": stack.handler("UploadFunction"),
        "processor": stack.handler("UploadProcessorFunction"),
    }


class Device(Client):
    """One connection of a user that can call any function (as API Gateway routes it)."""

    apps: dict[str, ModuleType]

    def via(self, name: str) -> Device:
        other = copy.copy(self)
        other.app = self.apps[name]
        return other


@pytest.fixture
def people(stack: Stack, apps: dict[str, ModuleType]) -> Callable[..., list[Device]]:
    def make(*names: str) -> list[Device]:
        tag = uuid.uuid4().hex[:6]
        made = []
        for name in names:
            device = Device(stack, apps["signaling"], apps["connect"], f"{name}-{tag}")
            device.apps = apps
            made.append(device)
        befriend(apps["message"], *made)  # a call rings only contacts
        return made

    return make


def group_call(caller: Device, *others: Device, conversation: str | None = None) -> str:
    data: dict[str, Any] = {"calleeIds": [o.user_id for o in others], "media": "video"}
    if conversation:
        data["conversationId"] = conversation
    call_id: str = caller.ok("call:initiate", data)["callId"]
    for other in others:
        other.ok("call:join", {"callId": call_id})
    return call_id


def conversation_of(owner: Device, *others: Device) -> str:
    data = owner.via("message").ok("conversation:create", {"members": [o.user_id for o in others]})
    conversation_id: str = data["conversationId"]
    return conversation_id


# ---------------------------------------------------------------------- call:media
def test_media_state_goes_to_the_others_and_into_get_active(people: Any) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    call_id = group_call(alice, bob, carol)
    # When bob mutes and shares his screen
    reply = bob.ok("call:media", {"callId": call_id, "audio": False, "screen": True})
    # Then his reply and the others' pushes carry his whole state; he gets no push
    assert reply == {"callId": call_id, "media": {"audio": False, "video": True, "screen": True}}
    pushed = {
        "callId": call_id,
        "userId": bob.user_id,
        "audio": False,
        "video": True,
        "screen": True,
    }
    for other in (alice, carol):
        assert [f["data"] for f in other.frames("call:media")] == [pushed]
    assert bob.frames("call:media") == []
    # And whoever asks for the active call sees everyone's state
    active = carol.ok("call:get-active")["call"]
    media = {p["userId"]: p["media"] for p in active["participants"]}
    assert media[bob.user_id] == {"audio": False, "video": True, "screen": True}
    assert media[alice.user_id] == {"audio": True, "video": True, "screen": False}


def test_media_state_is_for_the_in_call_connection_of_a_joined_participant(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    call_id = alice.ok(
        "call:initiate", {"calleeIds": [bob.user_id, carol.user_id], "media": "audio"}
    )["callId"]
    bob.ok("call:join", {"callId": call_id})
    # carol is still ringing: nothing to say yet
    refused = carol.call("call:media", {"callId": call_id, "video": True})
    assert refused["error"]["details"]["reason"] == "call_over"
    # bob's other device is not in the call
    bob_phone = Device(stack, apps["signaling"], apps["connect"], bob.user_id)
    assert bob_phone.error("call:media", {"callId": call_id, "audio": False}) == "forbidden"
    # nothing given is a typed error
    assert bob.error("call:media", {"callId": call_id}) == "bad_request"
    # and an audio call starts with the camera off
    active = bob.ok("call:get-active")["call"]
    assert {p["userId"]: p.get("media") for p in active["participants"]}[bob.user_id] == {
        "audio": True,
        "video": False,
        "screen": False,
    }
    for device in (alice, carol):
        assert device.frames("call:media") == []


# ---------------------------------------------------------------------- call:recording
def test_recording_is_announced_to_everyone_and_in_the_conversation(people: Any) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    conversation = conversation_of(alice, bob, carol)
    call_id = group_call(alice, bob, carol, conversation=conversation)
    # When carol starts recording
    reply = carol.ok("call:recording", {"callId": call_id, "state": "started"})
    assert reply == {"callId": call_id, "state": "started", "recording": [carol.user_id]}
    # Then every participant (carol's own in-call connection too) gets call:recording
    started = {
        "callId": call_id,
        "userId": carol.user_id,
        "state": "started",
        "recording": [carol.user_id],
    }
    for device in (alice, bob, carol):
        assert [f["data"] for f in device.frames("call:recording")] == [started]
    # And the conversation has a system entry, pushed to the members
    [entry] = [f["data"] for f in bob.frames("message:new")]
    assert entry["system"] == {
        "event": "call:recording",
        "callId": call_id,
        "userId": carol.user_id,
        "state": "started",
    }
    assert entry["senderId"] == carol.user_id and "started recording" in entry["body"]
    # Starting again changes nothing (no second push or entry)
    carol.ok("call:recording", {"callId": call_id, "state": "started"})
    assert len(alice.frames("call:recording")) == 1 and len(bob.frames("message:new")) == 1
    assert alice.ok("call:get-active")["call"]["recording"] == [carol.user_id]
    # When she stops: announced and recorded the same way
    carol.ok("call:recording", {"callId": call_id, "state": "stopped"})
    assert alice.frames("call:recording")[-1]["data"]["state"] == "stopped"
    history = bob.via("message").ok("message:history", {"conversationId": conversation})
    states = [m["system"]["state"] for m in history["messages"] if m.get("system")]
    assert states == ["started", "stopped"]
    # A recorder who leaves stops recording (the others see it in get-active)
    bob.ok("call:recording", {"callId": call_id, "state": "started"})
    bob.ok("call:leave", {"callId": call_id})
    assert alice.ok("call:get-active")["call"]["recording"] == []


# ---------------------------------------------------------------------- call:error
ERRORS = {410: "GoneException"}


@pytest.fixture
def failing_posts(apps: dict[str, ModuleType]) -> Iterator[Callable[[dict[str, int]], None]]:
    """``fail({connection_id: status})``: the signaling function's posts to those
    connections get that answer (see tests/integration/test_delivery.py)."""
    client = apps["signaling"].service.delivery.gateway.client
    outcomes: dict[str, int] = {}

    def answer(params: dict[str, Any], **_: Any) -> Any:
        status = outcomes.get(unquote(params["url_path"].rsplit("/", 1)[-1]))
        if status is None:
            return None
        error = {"Code": ERRORS[status], "Message": ERRORS[status]}
        return (
            AWSResponse(url="", status_code=status, headers={}, raw=None),
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}},
        )

    event = "before-call.apigatewaymanagementapi.PostToConnection"
    client.meta.events.register(event, answer)
    try:
        yield outcomes.update
    finally:
        client.meta.events.unregister(event, answer)


def test_an_offer_to_a_peer_whose_connection_is_gone_is_a_call_error(
    stack: Stack, people: Any, failing_posts: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    call_id = group_call(alice, bob, carol)
    # Given bob's in-call connection is gone (opened a minute ago: not "still connecting")
    stack.client("dynamodb").update_item(
        TableName=stack.table("ConnectionsTable"),
        Key={"connectionId": {"S": bob.connection_id}},
        UpdateExpression="SET connectedAt = connectedAt - :minute",
        ExpressionAttributeValues={":minute": {"N": "60000"}},
    )
    failing_posts({bob.connection_id: 410})
    # When alice relays an offer to him (the relay itself went out: its reply says sent)
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    assert alice.ok("call:offer", {"callId": call_id, "toUserId": bob.user_id, "offer": offer})
    # Then alice gets call:error, and bob's part ends: carol is told he left
    [error] = [f["data"] for f in alice.frames("call:error")]
    assert error["code"] == "peer_gone" and error["userId"] == bob.user_id
    assert error["callId"] == call_id
    left = carol.frames("call:participant-left")
    assert left[-1]["data"] == {"callId": call_id, "userId": bob.user_id, "reason": "disconnected"}
    participants = {
        p["userId"]: p["state"] for p in carol.ok("call:get-active")["call"]["participants"]
    }
    assert participants[bob.user_id] == "left"
    assert carol.frames("call:error") == []


# ---------------------------------------------------------------------- voice, recordings
def upload(device: Device, stack: Stack, data: bytes, **start: Any) -> dict[str, Any]:
    """upload:start with ``start``, the bytes PUT to S3, upload:complete, the processor run:
    the upload:complete or upload:error push."""
    uploads = device.via("upload")
    started = uploads.ok("upload:start", {"size": len(data), **start})
    status, _, _ = http("PUT", started["url"], data, started["headers"])
    assert status == 200
    uploads.ok("upload:complete", {"uploadId": started["uploadId"]})
    run_processor(stack, device.apps["processor"])
    for frame in reversed(device.frames()):
        ours = frame["data"].get("uploadId") == started["uploadId"]
        if ours and frame["type"] in ("upload:complete", "upload:error"):
            return dict(frame["data"], type=frame["type"])
    raise AssertionError("no outcome for the upload")


@pytest.mark.parametrize(
    ("data", "content_type", "duration_ms"),
    [(VOICE_WEBM, "audio/webm", 1481), (VOICE_OGG, "audio/ogg", 1500)],
)
def test_a_voice_message_is_verified_timed_by_the_server_and_played_by_members(
    stack: Stack, people: Any, data: bytes, content_type: str, duration_ms: int
) -> None:
    alice, bob = people("alice", "bob")
    conversation = conversation_of(alice, bob)
    # When alice records a voice message and uploads it for the conversation
    done = upload(
        alice,
        stack,
        data,
        fileName="voice",
        contentType=f"{content_type};codecs=opus",
        purpose="voice",
        conversationId=conversation,
    )
    # Then the processor verified the container and read its duration from it
    assert done["type"] == "upload:complete", done
    assert done["durationMs"] == duration_ms
    attachment = {
        "uploadId": done["uploadId"],
        "kind": "voice",
        "durationMs": duration_ms,
        "waveform": [0, 40, 255, 90],
    }
    chat = alice.via("message")

    def send(*attachments: dict[str, Any], to: str = conversation) -> dict[str, Any]:
        return chat.call(
            "message:send",
            {
                "conversationId": to,
                "clientMessageId": uuid.uuid4().hex,
                "body": "",
                "attachments": list(attachments),
            },
        )

    # A duration other than the server's, or no duration, is refused; so is a plain file
    # upload passed off as a voice message
    assert send({**attachment, "durationMs": 60_000})["error"]["code"] == "bad_request"
    assert send({**attachment, "durationMs": None})["error"]["code"] == "bad_request"
    # ... and the voice message of one conversation posted in another
    elsewhere = conversation_of(alice, *people("carol"))
    assert send(attachment, to=elsewhere)["error"]["code"] == "bad_request"
    assert send(attachment)["ok"]
    # The member gets it with the server's duration and the waveform, and can play it
    [message] = [f["data"] for f in bob.frames("message:new")]
    [got] = message["attachments"]
    assert (got["kind"], got["durationMs"], got["waveform"]) == (
        "voice",
        duration_ms,
        [0, 40, 255, 90],
    )
    view = bob.via("upload").ok(
        "upload:get", {"uploadId": done["uploadId"], "conversationId": conversation}
    )
    assert view["durationMs"] == duration_ms
    status, _, stored = http("GET", view["url"])
    assert status == 200 and stored == data


def test_media_that_is_not_what_it_claims_is_rejected(stack: Stack, people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = conversation_of(alice, bob)
    voice = {"purpose": "voice", "conversationId": conversation, "fileName": "v"}
    # Ogg declared as WebM: the magic bytes say otherwise
    wrong = upload(alice, stack, VOICE_OGG, contentType="audio/webm", **voice)
    assert (wrong["type"], wrong["code"]) == ("upload:error", "type_mismatch")
    # The right magic bytes, then garbage: the container does not parse
    broken = VOICE_WEBM[:40] + bytes(len(VOICE_WEBM) - 40)
    bad = upload(alice, stack, broken, contentType="audio/webm", **voice)
    assert (bad["type"], bad["code"]) == ("upload:error", "invalid_media"), bad
    # A video passed off as a voice message
    video = upload(alice, stack, RECORDING, contentType="audio/webm", **voice)
    assert (video["type"], video["code"]) == ("upload:error", "invalid_media"), video
    # Not audio at all
    refused = alice.via("upload").call(
        "upload:start", {**voice, "contentType": "application/pdf", "size": 100}
    )
    assert refused["error"]["code"] == "bad_request"
    assert upload_record(stack, bad["uploadId"])["state"] == "failed"


def announce_recording(
    device: Device, call_id: str, monkeypatch: pytest.MonkeyPatch, at_ms: int, for_ms: int
) -> None:
    """``call:recording`` started at ``at_ms`` and stopped ``for_ms`` later (the call
    service's clock)."""
    service = device.apps["signaling"].service
    for state, now in (("started", at_ms), ("stopped", at_ms + for_ms)):
        monkeypatch.setattr(service, "_clock", lambda now=now: now / 1000)
        device.ok("call:recording", {"callId": call_id, "state": state})
    monkeypatch.undo()


def test_a_recording_lands_in_the_conversation_and_a_rejected_one_is_a_call_error(
    stack: Stack, people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = people("alice", "bob")
    conversation = conversation_of(alice, bob)
    call_id = group_call(alice, bob, conversation=conversation)
    start = {"fileName": "call.webm", "purpose": "recording", "callId": call_id}
    # Before announcing it, alice may not upload a recording (consent)
    early = alice.via("upload").call(
        "upload:start", {**start, "contentType": "video/webm", "size": len(RECORDING)}
    )
    assert early["error"]["code"] == "forbidden"
    announce_recording(alice, call_id, monkeypatch, int(time.time() * 1000), 3000)
    # A broken recording: rejected, and her call UI hears of it as call:error
    broken = RECORDING[:40] + bytes(len(RECORDING) - 40)
    bad = upload(alice, stack, broken, contentType="video/webm", **start)
    assert bad["type"] == "upload:error"
    [error] = [f["data"] for f in alice.frames("call:error")]
    assert error == {
        "callId": call_id,
        "code": "invalid_media",
        "message": error["message"],
        "uploadId": bad["uploadId"],
    }
    # The real one is verified and timed, and posted in the call's conversation
    done = upload(alice, stack, RECORDING, contentType="video/webm", **start)
    assert (done["type"], done["durationMs"]) == ("upload:complete", 1981)
    attachment = {"uploadId": done["uploadId"], "kind": "recording", "durationMs": 1981}
    sent = alice.via("message").ok(
        "message:send",
        {
            "conversationId": conversation,
            "clientMessageId": uuid.uuid4().hex,
            "body": "the call",
            "attachments": [attachment],
        },
    )
    history = bob.via("message").ok("message:history", {"conversationId": conversation})
    [message] = [m for m in history["messages"] if m["seq"] == sent["seq"]]
    assert message["attachments"][0]["kind"] == "recording"
    view = bob.via("upload").ok(
        "upload:get", {"uploadId": done["uploadId"], "conversationId": conversation}
    )
    assert http("GET", view["url"])[2] == RECORDING


def test_a_recording_may_not_outlast_what_its_recorder_announced(
    stack: Stack, people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given alice announced recording for half a second ("started", then "stopped")
    alice, bob = people("alice", "bob")
    conversation = conversation_of(alice, bob)
    call_id = group_call(alice, bob, conversation=conversation)
    now = int(time.time() * 1000)
    announce_recording(alice, call_id, monkeypatch, now, 500)
    start = {"fileName": "call.webm", "purpose": "recording", "callId": call_id}
    # When she uploads a recording of 2 s (she went on recording after "stopped")
    longer = upload(alice, stack, RECORDING, contentType="video/webm", **start)
    # Then it is rejected (her call UI hears of it), never usable in the conversation
    assert (longer["type"], longer["code"]) == ("upload:error", "invalid_media"), longer
    [error] = [f["data"] for f in alice.frames("call:error")]
    assert "announced" in error["message"] and error["uploadId"] == longer["uploadId"]
    assert upload_record(stack, longer["uploadId"])["state"] == "failed"
    attach = {"uploadId": longer["uploadId"], "kind": "recording", "durationMs": 1981}
    sent = alice.via("message").call(
        "message:send",
        {
            "conversationId": conversation,
            "clientMessageId": uuid.uuid4().hex,
            "body": "",
            "attachments": [attach],
        },
    )
    assert sent["error"]["code"] == "bad_request"
    assert [f for f in bob.frames("message:new") if f["data"].get("attachments")] == []
    # And once she has announced another 1.5 s, the same 2 s recording is hers to post
    announce_recording(alice, call_id, monkeypatch, now + 1000, 1500)
    done = upload(alice, stack, RECORDING, contentType="video/webm", **start)
    assert (done["type"], done["durationMs"]) == ("upload:complete", 1981), done


def test_a_recorder_who_left_the_conversation_starts_no_recording_for_it(
    stack: Stack, people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaving a group does not take one out of its call: a former member who announced a
    recording there may not start the recording's upload, bound to the conversation they
    left (the same refusal as a participant who never was a member)."""
    alice, bob, carol = people("alice", "bob", "carol")
    group = conversation_of(alice, bob, carol)
    for member in (bob, carol):
        member.via("message").ok("conversation:accept", {"conversationId": group})
    call_id = group_call(alice, bob, carol, conversation=group)
    announce_recording(carol, call_id, monkeypatch, int(time.time() * 1000), 3000)
    # Given carol left the group, still in its call
    carol.via("message").ok("conversation:leave", {"conversationId": group})
    participants = carol.ok("call:get-active")["call"]["participants"]
    assert {p["userId"]: p["state"] for p in participants}[carol.user_id] == "joined"
    # When she starts the recording's upload, it is refused and nothing is done
    window = InProcess().window()
    start = {"fileName": "call.webm", "purpose": "recording", "callId": call_id}
    refused = carol.via("upload").call(
        "upload:start", {**start, "contentType": "video/webm", "size": len(RECORDING)}
    )
    assert refused["error"] == {
        "code": "forbidden",
        "message": "you are not a member of the call's conversation",
    }, refused
    window.assert_nothing_happened("a recording upload by a former member")
