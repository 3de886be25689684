"""Notification consumer: in-app notification, e-mail per preferences, digest windows."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from moto.ses.models import ses_backends
from moto.sqs.models import sqs_backends
from switchboard.limits import MAX_MESSAGE_BYTES
from switchboard.queues import NotificationJob

from devserver import ACCOUNT_ID, REGION
from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client
from tests.support.effects import InProcess
from tests.support.events import frame, ws_event


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


def queued_jobs(stack: Stack, user_id: str, kind: str) -> list[NotificationJob]:
    """Jobs for ``user_id`` waiting on the notification queue (read from moto's backend,
    which also shows delayed ones; the queue is shared, so nothing is taken off it)."""
    queue_name = stack.resources["NotificationQueue"].rsplit("/", 1)[-1]
    jobs = [
        NotificationJob.parse(m.body)
        for m in sqs_backends[ACCOUNT_ID][REGION].queues[queue_name]._messages
    ]
    return [j for j in jobs if j.user_id == user_id and j.kind == kind]


def verify_email(stack: Stack, consumer: Any, client: Client, address: str) -> None:
    """Runs the verification job the last preferences:set queued, and enters the code
    the mail to ``address`` carries."""
    (pending,) = queued_jobs(stack, client.user_id, "verify_email")[-1:]
    consumer.lambda_handler(sqs_event(pending), FakeContext())
    code = emails_to(address)[-1].subject.rsplit(" ", 1)[-1]
    assert client.ok("preferences:verify-email", {"code": code})["emailVerified"] is True


def sent_headers(consumer: Any) -> list[dict[str, str]]:
    """The headers of every SendEmail the consumer's SES client makes from now on, as the
    request carries them (moto keeps the mail but drops its headers)."""
    seen: list[dict[str, str]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        headers = params["Content"]["Simple"].get("Headers", [])
        seen.append({h["Name"]: h["Value"] for h in headers})

    consumer.service.mailer.client.meta.events.register(
        "provide-client-params.sesv2.SendEmail", capture
    )
    return seen


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


def message_to(stack: Stack, user_id: str, body: str = "hi") -> str:
    """A real conversation with one message (seq 1) from a fresh sender to ``user_id``: a
    message job is checked against the conversation and the message when it runs (muted,
    left, deleted: nothing is notified; notifier.py)."""
    (sender,) = _people(stack, "sender")
    conversation: str = sender.ok("conversation:create", {"members": [user_id]})["conversationId"]
    sender.ok(
        "message:send", {"conversationId": conversation, "clientMessageId": "1", "body": body}
    )
    return conversation


def test_notification_is_recorded_once_and_listed(stack: Stack) -> None:
    consumer = stack.handler("NotificationFunction")
    app, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    bob = Client(stack, app, connect, f"bob-{uuid.uuid4().hex[:6]}")
    same = job(bob.user_id, message_to(stack, bob.user_id, "first"), 1, "first")
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
    alice.ok(
        "message:send", {"conversationId": conversation, "clientMessageId": "c1", "body": "hi"}
    )
    consumer.lambda_handler(sqs_event(job(bob.user_id, conversation, 1)), FakeContext())
    assert emails_to(address) == []

    # Given e-mail enabled (and the address verified): the first message e-mails at once,
    # the next ones wait for a digest
    bob.ok("preferences:set", {"emailOnOffline": True, "email": address, "digestMinutes": 1})
    verify_email(stack, consumer, bob, address)
    verification_mails = len(emails_to(address))
    window = InProcess().window()
    for seq in (2, 3, 4):
        alice.ok(
            "message:send",
            {"conversationId": conversation, "clientMessageId": f"c{seq}", "body": f"msg {seq}"},
        )
        consumer.lambda_handler(
            sqs_event(job(bob.user_id, conversation, seq, f"msg {seq}")), FakeContext()
        )
    sent = emails_to(address)[verification_mails:]
    assert len(sent) == 1
    assert "msg 2" in sent[0].body

    # And exactly one digest job was queued, delayed to the window's end: DelaySeconds 60
    # as the consumer sent it (the effect log), the job as moto holds it
    queue_url = stack.resources["NotificationQueue"]
    sends = [e for e in window.effects() if e["operation"].startswith("SendMessage")]
    assert [(e["target"], e["delaySeconds"]) for e in sends] == [(queue_url, [60])]
    queued = sqs_backends[ACCOUNT_ID][REGION].queues[queue_url.rsplit("/", 1)[-1]]._messages
    digests = [
        NotificationJob.parse(m.body)
        for m in queued
        if json.loads(m.body)["user_id"] == bob.user_id and json.loads(m.body)["kind"] == "digest"
    ]
    assert len(digests) == 1

    # When the digest job runs: one e-mail summarising the unread messages
    consumer.lambda_handler(sqs_event(digests[0]), FakeContext())
    sent = emails_to(address)[verification_mails:]
    assert len(sent) == 2
    assert sent[1].subject == "4 unread messages in Bike"
    assert "msg 4" in sent[1].body


def _people(stack: Stack, *names: str) -> list[Client]:
    app, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    tag = uuid.uuid4().hex[:6]
    return [Client(stack, app, connect, f"{name}-{tag}") for name in names]


def test_an_address_nobody_verified_gets_the_verification_mail_and_nothing_else(
    stack: Stack,
) -> None:
    consumer = stack.handler("NotificationFunction")
    (mallory,) = _people(stack, "mallory")
    victim = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    # Given mallory puts a stranger's address in her preferences
    prefs = mallory.ok("preferences:set", {"emailOnOffline": True, "email": victim})
    assert prefs["emailVerified"] is False
    assert mallory.ok("preferences:get")["emailVerified"] is False
    for pending in queued_jobs(stack, mallory.user_id, "verify_email"):
        consumer.lambda_handler(sqs_event(pending), FakeContext())
    # When five conversations write to her while she is offline (attacker-written text)
    for _ in range(5):
        relay = message_to(stack, mallory.user_id, "BUY CHEAP WATCHES")
        consumer.lambda_handler(
            sqs_event(job(mallory.user_id, relay, 1, "BUY CHEAP WATCHES")), FakeContext()
        )
    # Then the stranger got one mail, the code, with none of that text
    mails = emails_to(victim)
    assert [m.subject.startswith("Your Switchboard code") for m in mails] == [True]
    assert "WATCHES" not in mails[0].body
    # and a wrong code does not verify the address
    assert mallory.error("preferences:verify-email", {"code": "000000"}) == "bad_request"
    assert mallory.ok("preferences:get")["emailVerified"] is False


def test_verification_mails_are_capped_per_address_and_a_refused_set_changes_nothing(
    stack: Stack,
) -> None:
    accounts = _people(stack, "m1", "m2", "m3", "m4")
    victim = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    # Given three accounts already asked for a code to the same stranger today
    for account in accounts[:3]:
        account.ok("preferences:set", {"email": victim})
    # When a fourth does
    refused = accounts[3].call("preferences:set", {"emailOnOffline": True, "email": victim})
    # Then it is refused, and neither its preferences nor the queue changed
    assert refused["error"]["code"] == "rate_limited"
    assert accounts[3].ok("preferences:get") == {
        "emailOnOffline": False,
        "email": None,
        "emailVerified": False,
        "digestMinutes": 15,
        "acceptRequests": True,
    }
    assert queued_jobs(stack, accounts[3].user_id, "verify_email") == []
    assert all(len(queued_jobs(stack, a.user_id, "verify_email")) == 1 for a in accounts[:3])


def test_strangers_asking_for_codes_to_an_address_do_not_lock_its_owner_out(
    stack: Stack,
) -> None:
    owner, *strangers = _people(stack, "owner", "s1", "s2", "s3")
    address = f"owner-{uuid.uuid4().hex[:6]}@example.com"
    # Given the owner asked for a code to her address, then two strangers did too (the
    # address's cap, 3 requesters a day, is used up)
    owner.ok("preferences:set", {"email": address})
    for stranger in strangers[:2]:
        stranger.ok("preferences:set", {"email": address})
    # When the owner asks again (her first mail was lost)
    assert owner.ok("preferences:set", {"email": address})["email"] == address
    # Then she gets a new code
    assert len(queued_jobs(stack, owner.user_id, "verify_email")) == 2
    # And a third stranger is refused, told it is the address's cap, and queues nothing
    refused = strangers[2].call("preferences:set", {"email": address})
    assert refused["error"]["code"] == "rate_limited"
    assert refused["error"]["details"]["scope"] == "address"
    assert refused["error"]["details"]["retryAfterMs"] > 0
    assert queued_jobs(stack, strangers[2].user_id, "verify_email") == []


def test_a_code_replaced_by_a_later_set_to_the_same_address_is_never_mailed(
    stack: Stack,
) -> None:
    consumer = stack.handler("NotificationFunction")
    (alice,) = _people(stack, "alice")
    address = f"alice-{uuid.uuid4().hex[:6]}@example.com"
    # Given two sets to the same address, whose jobs run late, in order
    alice.ok("preferences:set", {"email": address})
    alice.ok("preferences:set", {"email": address})
    first, second = queued_jobs(stack, alice.user_id, "verify_email")
    consumer.lambda_handler(sqs_event(first), FakeContext())
    # Then the first code (no longer valid) was not mailed; the second is, and works
    assert emails_to(address) == []
    consumer.lambda_handler(sqs_event(second), FakeContext())
    (mail,) = emails_to(address)
    code = mail.subject.rsplit(" ", 1)[-1]
    assert code == second.data["code"]
    assert alice.ok("preferences:verify-email", {"code": code})["emailVerified"] is True


def test_notification_mail_is_capped_per_day_and_carries_one_click_unsubscribe(
    stack: Stack,
) -> None:
    consumer = stack.handler("NotificationFunction", MAIL_DAILY_LIMIT_PER_USER="3")
    unsubscribe = stack.handler("UnsubscribeFunction")
    (bob,) = _people(stack, "bob")
    address = f"{bob.user_id}@example.com"
    bob.ok("preferences:set", {"emailOnOffline": True, "email": address})
    verify_email(stack, consumer, bob, address)  # mail 1 of the day: the code
    headers = sent_headers(consumer)
    # When four conversations each have a first message for him (one mail each, at most)
    for n in range(4):
        consumer.lambda_handler(
            sqs_event(job(bob.user_id, message_to(stack, bob.user_id, f"n{n}"), 1)), FakeContext()
        )
    # Then the day's cap holds: two more mails, each with List-Unsubscribe
    assert len(emails_to(address)) == 3
    assert len(headers) == 2
    for sent in headers:
        assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert (
            sent["List-Unsubscribe"].startswith("<https://")
            and "/api/unsubscribe?" in sent["List-Unsubscribe"]
        )
    # And the link works: GET only asks, POST (one click) turns e-mail off
    query = dict(parse_qsl(urlsplit(headers[0]["List-Unsubscribe"][1:-1]).query))
    assert http_event(unsubscribe, "GET", query)["statusCode"] == 200
    assert bob.ok("preferences:get")["emailOnOffline"] is True
    assert http_event(unsubscribe, "POST", {**query, "t": "forged"})["statusCode"] == 400
    assert http_event(unsubscribe, "POST", query)["statusCode"] == 200
    assert bob.ok("preferences:get")["emailOnOffline"] is False


def http_event(module: Any, method: str, query: dict[str, str]) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) request to /api/unsubscribe."""
    event = {
        "version": "2.0",
        "routeKey": f"{method} /api/unsubscribe",
        "rawPath": "/api/unsubscribe",
        "rawQueryString": urlencode(query),
        "queryStringParameters": query,
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "requestContext": {
            "http": {"method": method, "path": "/api/unsubscribe", "sourceIp": "127.0.0.1"},
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{method} /api/unsubscribe",
            "stage": "$default",
        },
        "body": "List-Unsubscribe=One-Click" if method == "POST" else None,
        "isBase64Encoded": False,
    }
    response: dict[str, Any] = module.lambda_handler(event, FakeContext())
    return response


def test_a_digest_never_mails_what_was_said_after_its_reader_left(stack: Stack) -> None:
    consumer = stack.handler("NotificationFunction")
    alice, bob, carol = _people(stack, "alice", "bob", "carol")
    conversation = alice.ok(
        "conversation:create", {"members": [bob.user_id, carol.user_id], "title": "Trip"}
    )["conversationId"]
    address = f"{bob.user_id}@example.com"
    bob.ok("preferences:set", {"emailOnOffline": True, "email": address, "digestMinutes": 1})
    verify_email(stack, consumer, bob, address)
    mails = len(emails_to(address))

    def say(body: str) -> None:
        alice.ok(
            "message:send",
            {"conversationId": conversation, "clientMessageId": body[:8], "body": body},
        )

    # Given a digest window open while bob was a member, and bob leaving before it ends
    say("before bob left")
    bob.ok("conversation:leave", {"conversationId": conversation})
    say("SECRET-after-bob-left")
    digest = NotificationJob(
        kind="digest",
        user_id=bob.user_id,
        created_at=int(time.time() * 1000),
        source=f"digest#{conversation}",
        conversation_id=conversation,
    )
    # When the digest job runs
    consumer.lambda_handler(sqs_event(digest), FakeContext())
    # Then bob is mailed nothing about a conversation he left (least of all what followed)
    assert emails_to(address)[mails:] == []


def _store_notifications(stack: Stack, user_id: str, read: list[bool]) -> list[str]:
    """Notifications of ``user_id`` written straight into the table (newest last), as the
    consumer would have recorded them over a month; their ids, oldest first."""
    client = stack.client("dynamodb")
    ids = [f"{1_700_000_000_000 + i:013d}#msg#x#{i}" for i in range(len(read))]
    for start in range(0, len(ids), 25):
        client.batch_write_item(
            RequestItems={
                stack.table("NotificationsTable"): [
                    {
                        "PutRequest": {
                            "Item": {
                                "userId": {"S": user_id},
                                "notificationId": {"S": ids[i]},
                                "kind": {"S": "call"},
                                "data": {"M": {}},
                                "createdAt": {"N": str(1_700_000_000_000 + i)},
                                "read": {"BOOL": read[i]},
                            }
                        }
                    }
                    for i in range(start, min(start + 25, len(ids)))
                ]
            }
        )
    return ids


@contextmanager
def _calls(app: Any, operation: str) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every ``operation`` the message function's DynamoDB client makes
    meanwhile (botocore's own hook)."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    client = app.service.notifications.client
    event = f"provide-client-params.dynamodb.{operation}"
    client.meta.events.register(event, record)
    try:
        yield seen
    finally:
        client.meta.events.unregister(event, record)


def test_listing_unread_notifications_reads_a_bounded_amount_per_frame(stack: Stack) -> None:
    (bob,) = _people(stack, "bob")
    # Given 700 read notifications above one unread one (a month of them)
    ids = _store_notifications(stack, bob.user_id, [False] + [True] * 700)
    # When bob lists his unread ones one at a time (each was a Query of one item: 701
    # Queries in one frame, until the function's timeout)
    with _calls(bob.app, "Query") as queries:
        page = bob.ok("notification:list", {"unreadOnly": True, "limit": 1})
    # Then the frame reads a bounded number of Queries and says where to go on
    assert len(queries) <= 3
    assert page["notifications"] == [] and page["cursor"] is not None
    found: list[str] = []
    frames = 1
    while page["cursor"] is not None and not found:
        frames += 1
        page = bob.ok(
            "notification:list", {"unreadOnly": True, "limit": 1, "before": page["cursor"]}
        )
        found = [n["notificationId"] for n in page["notifications"]]
    # And going on finds the unread one, within a few frames
    assert found == [ids[0]] and frames <= 3


def test_marking_notifications_read_writes_only_unread_ones_of_the_caller(
    stack: Stack,
) -> None:
    bob, mallory = _people(stack, "bob", "mallory")
    ids = _store_notifications(stack, bob.user_id, [False, True])
    with _calls(bob.app, "UpdateItem") as updates:
        # When mallory marks 100 ids, bob's among them (each was a conditional write)
        assert mallory.ok("notification:read", {"notificationIds": ids * 50}) == {"marked": 0}
        # And bob marks his read one 99 times and his unread one once
        marked = bob.ok("notification:read", {"notificationIds": [ids[1]] * 99 + [ids[0]]})
    assert marked == {"marked": 1}
    # Then one write was made in all: bob's unread notification
    assert [u["Key"]["notificationId"]["S"] for u in updates] == [ids[0]]
    listed = bob.ok("notification:list", {})["notifications"]
    assert [n["read"] for n in listed] == [True, True]


def test_a_removed_member_never_reads_a_later_edit_in_a_notification(stack: Stack) -> None:
    consumer = stack.handler("NotificationFunction")
    alice, bob, carol = _people(stack, "alice", "bob", "carol")
    group = alice.ok("conversation:create", {"members": [bob.user_id, carol.user_id]})
    conversation = group["conversationId"]
    for member in (bob, carol):
        member.ok("conversation:accept", {"conversationId": conversation})
    sent = alice.ok(
        "message:send",
        {"conversationId": conversation, "clientMessageId": "1", "body": "meet at 5"},
    )
    # Given bob was notified of it, then removed, and the message edited after that
    recorded = job(bob.user_id, conversation, sent["seq"], "meet at 5")
    consumer.lambda_handler(sqs_event(recorded), FakeContext())
    alice.ok("conversation:remove-member", {"conversationId": conversation, "userId": bob.user_id})
    edit = {"conversationId": conversation, "seq": sent["seq"], "body": "meet at the old mill"}
    alice.ok("message:edit", edit)
    # Then his notification shows the edit as his history does: withheld, not the new text
    history = bob.ok("message:history", {"conversationId": conversation})["messages"]
    assert [m["body"] for m in history if m["seq"] == sent["seq"]] == [""]
    (listed,) = bob.ok("notification:list", {})["notifications"]
    assert listed["data"]["preview"] == ""
    # While a member still in the conversation reads the message as it is now
    carol_job = job(carol.user_id, conversation, sent["seq"], "meet at 5")
    consumer.lambda_handler(sqs_event(carol_job), FakeContext())
    (current,) = carol.ok("notification:list", {})["notifications"]
    assert current["data"]["preview"] == "meet at the old mill"


def test_a_notification_page_always_fits_in_one_reply(stack: Stack) -> None:
    """Message notifications carry the preview (200 characters) and the conversation's
    title (200): in emoji, 12 bytes each as sent. 45 of them (`limit` is up to 100) made a
    230 KB reply, which API Gateway never sends (it caps a message at 128 KB)."""
    consumer = stack.handler("NotificationFunction")
    # (a third member who is online: nobody offline, so no job lands on the shared queue)
    sender, bob, carol = _people(stack, "sender", "bob", "carol")
    emoji = "\U0001f600" * 200
    group = sender.ok(
        "conversation:create", {"members": [bob.user_id, carol.user_id], "title": emoji}
    )["conversationId"]
    bob.ok("conversation:accept", {"conversationId": group})
    jobs = []
    for i in range(45):  # within the send limit
        seq = sender.ok(
            "message:send", {"conversationId": group, "clientMessageId": f"n{i}", "body": emoji}
        )["seq"]
        jobs.append(
            replace(
                job(bob.user_id, group, seq, emoji),
                data={**job(bob.user_id, group, seq).data, "title": emoji},
            )
        )
    consumer.lambda_handler(sqs_event(*jobs), FakeContext())
    listed: set[str] = set()
    before = None
    for _ in range(10):
        event = ws_event(
            "notification:list",
            body=frame("notification:list", {"limit": 100, "before": before}),
            connection_id=bob.connection_id,
            user_id=bob.user_id,
        )
        body = bob.app.lambda_handler(event, FakeContext())["body"]
        assert len(body.encode()) <= MAX_MESSAGE_BYTES
        page = json.loads(body)["data"]
        listed |= {n["notificationId"] for n in page["notifications"]}
        before = page["cursor"]
        if before is None or not page["notifications"]:
            break
    assert len(listed) == 45
