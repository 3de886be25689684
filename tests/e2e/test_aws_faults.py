"""Failing AWS under the functions, through the devserver (devserver/aws_faults.py)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.clients import Client, admin, clear_faults
from tests.e2e.conftest import RunningDevserver
from tests.support.images import http, png_with_exif

pytestmark = pytest.mark.e2e


def _user(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def lost_answers(ds: RunningDevserver, *operations: str) -> AsyncIterator[dict[str, Any]]:
    """Inside: every DynamoDB ``operations`` request of the functions happens, and its
    answer is lost. The dict yielded holds the injected faults once the block is done."""
    config = {
        "failRate": 1.0,
        "services": ["dynamodb"],
        "operations": list(operations),
        "mode": "after",
    }
    await asyncio.to_thread(admin, ds, "POST", "/__devserver/faults", {"aws": config})
    injected: dict[str, Any] = {}
    try:
        yield injected
        snapshot = await asyncio.to_thread(admin, ds, "GET", "/__devserver/faults")
        injected.update(snapshot["aws"]["injected"])
    finally:
        await asyncio.to_thread(clear_faults, ds)


async def test_a_send_whose_answer_was_lost_is_stored_once_and_retried_idempotently(
    devserver: RunningDevserver,
) -> None:
    alice, bob = Client(devserver, _user("alice")), Client(devserver, _user("bob"))
    async with alice, bob:
        conversation = await alice.create_conversation([bob.user_id])
        # The send's transaction commits, but every answer to it is lost (and botocore's
        # retries of it too): the function cannot know, and answers `internal`.
        body = {"conversationId": conversation, "clientMessageId": "amb-1", "body": "hi"}
        async with lost_answers(devserver, "TransactWriteItems") as injected:
            failed = await alice.request("message:send", body)
        assert failed["ok"] is False and failed["error"]["code"] == "internal", failed
        assert injected["dynamodb.TransactWriteItems.after"] >= 1
        # The client retries with the same clientMessageId: the stored message, once.
        again = await alice.call("message:send", body)
        assert again["seq"] == 1
        assert (await alice.send(conversation, "next"))["seq"] == 2
        history = await bob.call("message:history", {"conversationId": conversation})
        assert [(m["seq"], m["clientMessageId"]) for m in history["messages"]] == [
            (1, "amb-1"),
            (2, history["messages"][1]["clientMessageId"]),
        ]
        await bob.wait_for_messages(conversation, range(1, 3))
        assert sorted(bob.messages[conversation]) == [1, 2]


async def test_uploads_complete_when_every_update_answer_is_lost(
    devserver: RunningDevserver,
) -> None:
    """Every UpdateItem of the functions happens but its answer is lost (botocore's retries
    then find the condition false): the upload's state transitions still know they were
    theirs (a token written with each), so nothing sticks in `processing`."""
    photo = png_with_exif(120, 90)
    async with (
        Client(devserver, _user("uploader")) as owner,
        lost_answers(devserver, "UpdateItem") as injected,
    ):
        start = await owner.call(
            "upload:start",
            {"fileName": "p.png", "contentType": "image/png", "size": len(photo)},
        )
        status, _, _ = await asyncio.to_thread(http, "PUT", start["url"], photo, start["headers"])
        assert status == 200
        await owner.call("upload:complete", {"uploadId": start["uploadId"]})
        done = await owner.wait_for(
            "upload:complete", lambda d: d["uploadId"] == start["uploadId"], timeout=60
        )
    assert done["contentType"] == "image/png"
    assert injected.get("dynamodb.UpdateItem.after", 0) >= 2
    state = await owner_state(devserver, start["uploadId"])
    assert state == "complete"


async def owner_state(ds: RunningDevserver, upload_id: str) -> str:
    item = await asyncio.to_thread(
        ds.aws("dynamodb").get_item,
        TableName=ds.resources["UploadsTable"],
        Key={"uploadId": {"S": upload_id}},
        ConsistentRead=True,
    )
    state: str = item["Item"]["state"]["S"]
    return state


async def test_call_transitions_succeed_when_every_write_answer_is_lost(
    devserver: RunningDevserver,
) -> None:
    """Every call write lands but its answer is lost: initiate, answer and end still
    succeed (the token each write carries tells a lost answer from a refusal)."""
    offer = {"type": "offer", "sdp": "v=0 lost-answer offer"}
    answer = {"type": "answer", "sdp": "v=0 lost-answer answer"}
    async with (
        Client(devserver, _user("caller")) as caller,
        Client(devserver, _user("callee")) as callee,
    ):
        # Calls ring only contacts: the pair first shares an accepted conversation.
        pair = await caller.create_conversation([callee.user_id])
        await callee.call("conversation:accept", {"conversationId": pair})
        async with lost_answers(devserver, "TransactWriteItems", "PutItem") as injected:
            started = await caller.call(
                "call:initiate", {"calleeId": callee.user_id, "media": "audio", "offer": offer}
            )
            call_id = started["callId"]
            await callee.call("call:answer", {"callId": call_id, "answer": answer})
            await caller.call("call:end", {"callId": call_id})
        assert injected.get("dynamodb.TransactWriteItems.after", 0) >= 3
        assert (await caller.call("call:get-active"))["call"] is None
        ended = await callee.wait_for("call:ended", lambda d: d["callId"] == call_id)
        assert ended["callId"] == call_id


async def test_a_receipt_whose_answer_was_lost_still_moves_and_is_pushed(
    devserver: RunningDevserver,
) -> None:
    alice, bob = Client(devserver, _user("alice")), Client(devserver, _user("bob"))
    async with alice, bob:
        conversation = await alice.create_conversation([bob.user_id])
        # Receipts flow between contacts: bob accepts alice's request first.
        await bob.call("conversation:accept", {"conversationId": conversation})
        await alice.send(conversation, "did you get this?")
        async with lost_answers(devserver, "UpdateItem"):
            acked = await bob.call("message:ack", {"conversationId": conversation, "seq": 1})
        assert acked["moved"] is True
        delivered = await alice.wait_for(
            "message:delivered", lambda d: d["conversationId"] == conversation
        )
        assert delivered["seq"] == 1
