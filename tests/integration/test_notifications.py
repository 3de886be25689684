"""Notification consumer: in-app notification, e-mail per preferences, digest windows."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from moto.ses.models import ses_backends
from moto.sqs.models import sqs_backends
from switchboard.queues import NotificationJob

from devserver import ACCOUNT_ID, REGION
from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client


def sqs_event(*jobs: NotificationJob) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": uuid.uuid4().hex,
                "receiptHandle": uuid.uuid4().hex,
                "body": job.body(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": REGION,
            }
            for job in jobs
        ]
    }


def emails_to(address: str) -> list[Any]:
    backend = ses_backends[ACCOUNT_ID][REGION]
    return [
        m
        for m in backend.sent_messages
        if address in getattr(m, "destinations", {}).get("ToAddresses", [])
    ]


def job(user_id: str, conversation_id: str, seq: int, preview: str = "hi") -> NotificationJob:
    return NotificationJob(
        kind="message",
        user_id=user_id,
        created_at=int(time.time() * 1000),
        source=f"msg#{conversation_id}#{seq}",
        conversation_id=conversation_id,
        data={
            "conversationId": conversation_id,
            "seq": seq,
            "senderId": "alice",
            "preview": preview,
        },
    )


def test_notification_is_recorded_once_and_listed(stack: Stack) -> None:
    consumer = stack.handler("NotificationFunction")
    app, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    bob = Client(stack, app, connect, f"bob-{uuid.uuid4().hex[:6]}")
    same = job(bob.user_id, "dm_x", 1, "first")
    # When the same job is processed twice (SQS is at-least-once)
    for _ in range(2):
        assert consumer.lambda_handler(sqs_event(same), FakeContext()) == {"batchItemFailures": []}
    # Then one notification exists, pushed once to the online device
    listed = bob.ok("notification:list", {})["notifications"]
    assert [(n["kind"], n["data"]["preview"], n["read"]) for n in listed] == [
        ("message", "first", False)
    ]
    assert len(bob.frames("notification:new")) == 1
    marked = bob.ok(
        "notification:read", {"notificationIds": [listed[0]["notificationId"], "someone-elses"]}
    )
    assert marked == {"marked": 1}
    assert bob.ok("notification:list", {"unreadOnly": True})["notifications"] == []


def test_email_goes_out_only_when_enabled_and_is_digested(stack: Stack) -> None:
    consumer = stack.handler("NotificationFunction")
    app, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, app, connect, f"alice-{tag}")
    bob = Client(stack, app, connect, f"bob-{tag}")
    conversation = alice.ok("conversation:create", {"members": [bob.user_id], "title": "Bike"})[
        "conversationId"
    ]
    address = f"bob-{tag}@example.com"

    # Given e-mail disabled: no e-mail
    consumer.lambda_handler(sqs_event(job(bob.user_id, conversation, 1)), FakeContext())
    assert emails_to(address) == []

    # Given e-mail enabled: the first message e-mails at once, the next ones wait for a digest
    bob.ok("preferences:set", {"emailOnOffline": True, "email": address, "digestMinutes": 1})
    for seq in (2, 3, 4):
        alice.ok(
            "message:send",
            {"conversationId": conversation, "clientMessageId": f"c{seq}", "body": f"msg {seq}"},
        )
        consumer.lambda_handler(
            sqs_event(job(bob.user_id, conversation, seq, f"msg {seq}")), FakeContext()
        )
    sent = emails_to(address)
    assert len(sent) == 1
    assert "msg 2" in sent[0].body

    # And exactly one digest job was queued, delayed to the window's end (read from moto's
    # backend: a delayed SQS message is invisible to ReceiveMessage until then)
    queue_name = stack.resources["NotificationQueue"].rsplit("/", 1)[-1]
    queued = sqs_backends[ACCOUNT_ID][REGION].queues[queue_name]._messages
    digests = [
        (round((m.delayed_until - time.time() * 1000) / 1000), NotificationJob.parse(m.body))
        for m in queued
        if json.loads(m.body)["user_id"] == bob.user_id and json.loads(m.body)["kind"] == "digest"
    ]
    assert [delay for delay, _ in digests] == [60]

    # When the digest job runs: one e-mail summarising the unread messages
    consumer.lambda_handler(sqs_event(digests[0][1]), FakeContext())
    sent = emails_to(address)
    assert len(sent) == 2
    assert sent[1].subject == "3 unread messages in Bike"
    assert "msg 4" in sent[1].body
