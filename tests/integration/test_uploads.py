"""Uploads under moto: the upload function's handlers in-process, real HTTP uploads to
the presigned URLs (moto's server), and the processor fed with the S3 notifications that
really arrived on the template's UploadEventsQueue."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.config import Config
from switchboard.uploads import part_range

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, new_conversation
from tests.support.events import upload_event_records
from tests.support.images import (
    elf_executable,
    exif_of,
    http,
    pdf_of_size,
    png_plain,
    png_with_exif,
    put_parts,
    size_of,
)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def apps(stack: Stack) -> tuple[ModuleType, ModuleType, ModuleType]:
    return (
        stack.handler("UploadFunction"),
        stack.handler("ConnectionFunction"),
        stack.handler("UploadProcessorFunction"),
    )


@pytest.fixture
def people(stack: Stack, apps: tuple[ModuleType, ModuleType, ModuleType]) -> Any:
    app, connect, _ = apps

    def make(*names: str) -> list[Client]:
        tag = uuid.uuid4().hex[:6]
        return [Client(stack, app, connect, f"{name}-{tag}") for name in names]

    return make


def run_processor_once(stack: Stack, processor: ModuleType) -> list[dict[str, Any]]:
    """Feeds one receive of S3 notifications from the queue to the processor, as the SQS
    mapping does (Lambda-shaped records; processed ones deleted, failed ones left). Returns
    the batch response with ``_receipt``: the receipt handle of the first failed record."""
    sqs = stack.client("sqs")
    url = stack.resources["UploadEventsQueue"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    if not messages:
        return []
    records = upload_event_records(messages)
    try:
        response: dict[str, Any] = processor.lambda_handler({"Records": records}, FakeContext())
    except BatchProcessingError:  # every record failed: the invocation fails, all stay
        response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    for m in messages:
        if m["MessageId"] in failed:
            response.setdefault("_receipt", m["ReceiptHandle"])
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [response]


def run_processor(stack: Stack, processor: ModuleType) -> list[dict[str, Any]]:
    """Every S3 notification waiting on the queue, processed (bounded)."""
    responses: list[dict[str, Any]] = []
    for _ in range(50):
        batch = run_processor_once(stack, processor)
        if not batch:
            return responses
        responses += batch
    raise AssertionError("the upload events queue does not drain")


def upload_record(stack: Stack, upload_id: str) -> dict[str, Any]:
    item = stack.client("dynamodb").get_item(
        TableName=stack.table("UploadsTable"), Key={"uploadId": {"S": upload_id}}
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def object_exists(stack: Stack, key: str) -> bool:
    listed = stack.client("s3").list_objects_v2(Bucket=stack.resources["UploadsBucket"], Prefix=key)
    return any(o["Key"] == key for o in listed.get("Contents", []))


def test_put_upload_of_a_photo_is_verified_stripped_and_thumbnailed(
    stack: Stack, apps: Any, people: Any
) -> None:
    _, _, processor = apps
    (alice,) = people("alice")
    photo = png_with_exif()
    assert exif_of(photo)  # Given a PNG that carries EXIF (camera make, GPS)
    start = alice.ok(
        "upload:start", {"fileName": "me.png", "contentType": "image/png", "size": len(photo)}
    )
    assert start["method"] == "put" and start["headers"] == {"Content-Type": "image/png"}
    # When the bytes go straight to S3 through the presigned URL
    status, _, _ = http("PUT", start["url"], photo, start["headers"])
    assert status == 200
    assert alice.ok("upload:complete", {"uploadId": start["uploadId"]})["state"] == "uploaded"
    run_processor(stack, processor)
    # Then the owner is told, and the result has no EXIF, same pixels size, a thumbnail
    kinds = [f["type"] for f in alice.frames() if f["type"].startswith("upload:")]
    assert kinds == ["upload:progress", "upload:processing", "upload:complete"]
    done = alice.frames("upload:complete")[0]["data"]
    assert done["uploadId"] == start["uploadId"] and done["contentType"] == "image/png"
    status, _, stored = http("GET", done["url"])
    assert status == 200 and stored[:8] == b"\x89PNG\r\n\x1a\n"
    assert exif_of(stored) == {} and size_of(stored) == size_of(photo)
    assert done["size"] == len(stored)
    status, _, thumb = http("GET", done["thumbnailUrl"])
    assert status == 200 and max(size_of(thumb)) == 256
    record = upload_record(stack, start["uploadId"])
    assert record["state"] == "complete" and "expiresAt" not in record
    assert alice.ok("upload:get", {"uploadId": start["uploadId"]})["state"] == "complete"


def test_a_put_reaches_100_percent_even_when_the_processor_finishes_first(
    stack: Stack, apps: Any, people: Any
) -> None:
    _, _, processor = apps
    (alice,) = people("alice")
    photo = png_with_exif()
    start = alice.ok(
        "upload:start", {"fileName": "me.png", "contentType": "image/png", "size": len(photo)}
    )
    status, _, _ = http("PUT", start["url"], photo, start["headers"])
    assert status == 200
    # The S3 event is processed before the client's upload:complete arrives
    run_processor(stack, processor)
    assert alice.frames("upload:complete")
    assert alice.ok("upload:complete", {"uploadId": start["uploadId"]})["state"] == "complete"
    progress = [f["data"] for f in alice.frames("upload:progress")]
    assert progress[-1] == {"uploadId": start["uploadId"], "percent": 100, "bytes": len(photo)}


def test_multipart_upload_confirms_each_part_and_reaches_100_percent(
    stack: Stack, apps: Any, people: Any
) -> None:
    _, _, processor = apps
    (alice,) = people("alice")
    data = pdf_of_size(11 * MiB + 123)
    start = alice.ok(
        "upload:start",
        {"fileName": "catalogue.pdf", "contentType": "application/pdf", "size": len(data)},
    )
    assert start["method"] == "multipart" and start["partSize"] == 5 * MiB
    assert [p["partNumber"] for p in start["parts"]] == [1, 2, 3]
    uploaded = put_parts(start["parts"], data, start["partSize"])
    # A part-done with a wrong ETag is refused: the server checks S3 itself
    wrong = {"uploadId": start["uploadId"], "partNumber": 1, "etag": "0" * 32}
    assert alice.error("upload:part-done", wrong) == "conflict"
    # Progress counts the parts reported done (and found in S3), one push per part
    percents = []
    for part in uploaded:
        reply = alice.ok("upload:part-done", {"uploadId": start["uploadId"], **part})
        percents.append(reply["percent"])
    assert percents == [45, 90, 100]
    pushed = [f["data"]["percent"] for f in alice.frames("upload:progress")]
    assert pushed == [45, 90, 100]
    done = alice.ok("upload:complete", {"uploadId": start["uploadId"], "parts": uploaded})
    assert done["state"] == "uploaded"
    run_processor(stack, processor)
    complete = alice.frames("upload:complete")
    assert len(complete) == 1  # S3 (moto) sends two events; the second one is skipped
    status, _, body = http("GET", complete[0]["data"]["url"])
    assert status == 200 and body == data


def test_complete_with_missing_parts_is_a_conflict_and_abort_cleans_up(
    stack: Stack, people: Any
) -> None:
    (alice,) = people("alice")
    data = pdf_of_size(10 * MiB)
    start = alice.ok(
        "upload:start", {"fileName": "a.pdf", "contentType": "application/pdf", "size": len(data)}
    )
    put_parts(start["parts"][:1], data, start["partSize"])
    reply = alice.call("upload:complete", {"uploadId": start["uploadId"]})
    assert reply["error"]["code"] == "conflict"
    assert reply["error"]["details"] == {"missingParts": [2]}
    assert alice.ok("upload:abort", {"uploadId": start["uploadId"]})["state"] == "aborted"
    assert alice.ok("upload:abort", {"uploadId": start["uploadId"]})["state"] == "aborted"
    s3 = stack.client("s3")
    uploads = s3.list_multipart_uploads(Bucket=stack.resources["UploadsBucket"])
    record = upload_record(stack, start["uploadId"])
    assert record["s3UploadId"] not in [u["UploadId"] for u in uploads.get("Uploads", [])]
    assert alice.error("upload:complete", {"uploadId": start["uploadId"]}) == "conflict"


@pytest.mark.parametrize(
    ("declared_type", "declared_size", "actual", "code"),
    [
        ("image/png", 5000, elf_executable(5000), "type_mismatch"),
        ("application/pdf", 4000, pdf_of_size(6000), "size_mismatch"),
        ("image/png", 300, b"\x89PNG\r\n\x1a\n" + bytes(292), "invalid_image"),
    ],
)
def test_stored_object_that_is_not_what_was_declared_is_deleted(
    stack: Stack,
    apps: Any,
    people: Any,
    declared_type: str,
    declared_size: int,
    actual: bytes,
    code: str,
) -> None:
    _, _, processor = apps
    (alice,) = people("alice")
    start = alice.ok(
        "upload:start",
        {"fileName": "x.png", "contentType": declared_type, "size": declared_size},
    )
    status, _, _ = http("PUT", start["url"], actual, start["headers"])
    assert status == 200  # nothing stops a presigned PUT from sending other bytes
    run_processor(stack, processor)
    errors = alice.frames("upload:error")
    assert [e["data"]["code"] for e in errors] == [code]
    record = upload_record(stack, start["uploadId"])
    assert record["state"] == "failed" and record["failureCode"] == code
    assert not object_exists(stack, record["key"])
    got = alice.ok("upload:get", {"uploadId": start["uploadId"]})
    assert got["error"]["code"] == code


def test_only_the_owner_can_touch_an_upload(people: Any) -> None:
    alice, mallory = people("alice", "mallory")
    start = alice.ok(
        "upload:start", {"fileName": "a.pdf", "contentType": "application/pdf", "size": 9 * MiB}
    )
    upload_id = start["uploadId"]
    etag = {"partNumber": 1, "etag": "a" * 32}
    for action, data in [
        ("upload:part-done", {"uploadId": upload_id, **etag}),
        ("upload:complete", {"uploadId": upload_id}),
        ("upload:abort", {"uploadId": upload_id}),
        ("upload:get", {"uploadId": upload_id}),
    ]:
        # Someone else's upload looks exactly like one that does not exist
        assert mallory.error(action, data) == "not_found"
        assert alice.error(action, {**data, "uploadId": "x" * 24}) == "not_found"
    assert alice.ok("upload:get", {"uploadId": upload_id})["state"] == "uploading"


def test_start_refuses_types_and_sizes_outside_the_configuration(people: Any) -> None:
    (alice,) = people("alice")
    exe = alice.call(
        "upload:start",
        {"fileName": "a.exe", "contentType": "application/x-msdownload", "size": 10},
    )
    assert exe["error"]["code"] == "bad_request"
    assert exe["error"]["details"][0]["field"] == "data.contentType"
    big = {"fileName": "a.pdf", "contentType": "application/pdf", "size": 101 * MiB}
    assert alice.error("upload:start", big) == "payload_too_large"
    # An image is read whole by Pillow: its own limit is far below the generic one
    image = alice.call(
        "upload:start", {"fileName": "a.gif", "contentType": "image/gif", "size": 21 * MiB}
    )
    assert image["error"]["code"] == "payload_too_large"
    assert image["error"]["details"] == {"maxBytes": 20 * MiB}
    assert alice.ok(
        "upload:start", {"fileName": "a.pdf", "contentType": "application/pdf", "size": 21 * MiB}
    )["uploadId"]
    assert alice.error("upload:start", {"fileName": "a", "contentType": "image/png"}) == (
        "bad_request"
    )
    assert alice.ok("upload:start", {"fileName": "a.jpg", "contentType": "image/JPG", "size": 10})[
        "headers"
    ] == {"Content-Type": "image/jpeg"}


def test_processor_acknowledges_test_events_and_decodes_keys(stack: Stack, apps: Any) -> None:
    _, _, processor = apps
    bucket = stack.resources["UploadsBucket"]
    s3 = stack.client("s3")
    # Given an object nobody handed a URL for, under a key that needs URL-encoding
    key = "uploads/stranger/some id+x"
    s3.put_object(Bucket=bucket, Key=key, Body=b"hello")
    responses = run_processor(stack, processor)
    assert all(r["batchItemFailures"] == [] for r in responses)
    assert not object_exists(stack, key)
    test_event = json.dumps({"Event": "s3:TestEvent", "Bucket": bucket})
    record = {"messageId": "m1", "receiptHandle": "r", "body": test_event, "attributes": {}}
    assert processor.lambda_handler({"Records": [record]}, FakeContext()) == {
        "batchItemFailures": []
    }


def test_sample_events_for_sam_local_invoke_are_handled(stack: Stack, apps: Any) -> None:
    app, _, processor = apps
    root = Path(__file__).resolve().parents[2] / "events"
    start = json.loads((root / "upload-start.json").read_text())
    reply = json.loads(app.lambda_handler(start, FakeContext())["body"])
    assert reply["ok"] and reply["data"]["method"] == "put"
    part_done = json.loads((root / "upload-part-done.json").read_text())
    reply = json.loads(app.lambda_handler(part_done, FakeContext())["body"])
    assert reply["error"]["code"] == "not_found"
    notification = json.loads((root / "upload-s3-notification.json").read_text())
    assert processor.lambda_handler(notification, FakeContext()) == {"batchItemFailures": []}


def test_racing_part_reports_never_lower_progress_and_end_at_100(stack: Stack, people: Any) -> None:
    (alice,) = people("alice")
    data = pdf_of_size(20 * MiB + 5)
    start = alice.ok(
        "upload:start", {"fileName": "r.pdf", "contentType": "application/pdf", "size": len(data)}
    )
    uploaded = put_parts(start["parts"], data, start["partSize"])
    assert len(uploaded) == 5
    replies: list[dict[str, Any]] = []

    def report(part: dict[str, Any]) -> None:
        replies.append(alice.ok("upload:part-done", {"uploadId": start["uploadId"], **part}))

    # When every part is reported at the same moment (parallel uploads)
    threads = [threading.Thread(target=report, args=(part,)) for part in uploaded]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then the last confirmation saw every part: 100 % was pushed and stored
    assert len(replies) == 5
    assert max(r["percent"] for r in replies) == 100
    assert 100 in [f["data"]["percent"] for f in alice.frames("upload:progress")]
    assert int(upload_record(stack, start["uploadId"])["bytes"]) == len(data)


def test_concurrent_completes_both_answer_and_complete_once(stack: Stack, people: Any) -> None:
    (alice,) = people("alice")
    data = pdf_of_size(11 * MiB)
    start = alice.ok(
        "upload:start", {"fileName": "c.pdf", "contentType": "application/pdf", "size": len(data)}
    )
    put_parts(start["parts"], data, start["partSize"])
    states: list[str] = []

    def complete() -> None:
        states.append(alice.ok("upload:complete", {"uploadId": start["uploadId"]})["state"])

    threads = [threading.Thread(target=complete) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert states == ["uploaded", "uploaded"]
    head = stack.client("s3").head_object(
        Bucket=stack.resources["UploadsBucket"], Key=upload_record(stack, start["uploadId"])["key"]
    )
    assert head["ContentLength"] == len(data)


def test_object_replaced_through_a_reused_put_url_after_completion_is_never_served(
    stack: Stack, apps: Any, people: Any
) -> None:
    _, _, processor = apps
    (alice,) = people("alice")
    photo = png_with_exif()
    start = alice.ok(
        "upload:start", {"fileName": "p.png", "contentType": "image/png", "size": len(photo)}
    )
    http("PUT", start["url"], photo, start["headers"])
    run_processor(stack, processor)
    done = upload_record(stack, start["uploadId"])
    assert done["state"] == "complete"
    served = http("GET", alice.ok("upload:get", {"uploadId": start["uploadId"]})["url"])[2]
    # When the still-valid PUT URL is used again with something else of the same size
    disguised = elf_executable(len(photo))
    status, _, _ = http("PUT", start["url"], disguised, start["headers"])
    assert status == 200
    run_processor(stack, processor)
    # Then the upload stays what was verified: the new object is deleted, never served
    record = upload_record(stack, start["uploadId"])
    assert record["state"] == "complete" and record["etag"] == done["etag"]
    assert not object_exists(stack, record["key"])
    url = alice.ok("upload:get", {"uploadId": start["uploadId"]})["url"]
    assert http("GET", url)[2] == served and exif_of(served) == {}
    assert not alice.frames("upload:error")


def _put_during_processing(
    stack: Stack,
    processor: ModuleType,
    put: tuple[str, dict[str, str], bytes],
    after_reads: int,
) -> list[dict[str, Any]]:
    """Runs the processor on the waiting events; right after its ``after_reads``-th read
    of the object, the bytes are PUT to the URL and that PUT's event is handled by a
    second, concurrent run (as a second Lambda invocation would). Returns both runs'
    batch responses, the second's first."""
    store = processor.uploads.store
    real_read = store.read
    url, headers, payload = put
    second: list[dict[str, Any]] = []
    reads = 0

    def read_then_replace(key: str, etag: str, max_bytes: int | None = None) -> bytes:
        nonlocal reads
        data: bytes = real_read(key, etag, max_bytes)
        reads += 1
        if reads == after_reads:
            assert http("PUT", url, payload, headers)[0] == 200
            second.extend(run_processor_once(stack, processor))
        return data

    store.read = read_then_replace
    try:
        first = run_processor_once(stack, processor)
    finally:
        del store.read
    return second + first


@pytest.mark.parametrize(
    ("content_type", "make", "reads", "outcome"),
    [
        # An image: replaced after the processor read all of it (it serves what it read).
        ("image/png", png_plain, 2, "complete"),
        # Anything else: replaced after the magic-bytes check, before the verified copy.
        ("application/pdf", lambda: pdf_of_size(6000), 1, "failed"),
    ],
)
def test_bytes_put_while_an_upload_is_checked_are_never_served_as_verified(
    stack: Stack, apps: Any, people: Any, content_type: str, make: Any, reads: int, outcome: str
) -> None:
    _, _, processor = apps
    alice, bob = people("alice", "bob")
    run_processor(stack, processor)  # the queue is shared: events other tests left go first
    original = make()
    start = alice.ok(
        "upload:start", {"fileName": "f", "contentType": content_type, "size": len(original)}
    )
    http("PUT", start["url"], original, start["headers"])
    # When, while the processor checks it, the still-valid URL gets an ELF 3x the size
    elf = elf_executable(3 * len(original))
    runs = _put_during_processing(stack, processor, (start["url"], start["headers"], elf), reads)
    # Then the concurrent run does not drop that event: SQS is left to deliver it again
    assert len(runs[0]["batchItemFailures"]) == 1
    for run in runs:
        if "_receipt" in run:  # redelivered now rather than after the visibility timeout
            stack.client("sqs").change_message_visibility(
                QueueUrl=stack.resources["UploadEventsQueue"],
                ReceiptHandle=run["_receipt"],
                VisibilityTimeout=0,
            )
    run_processor(stack, processor)
    # And nobody is ever served bytes that were not the ones checked
    record = upload_record(stack, start["uploadId"])
    assert record["state"] == outcome
    assert not object_exists(stack, record["key"])  # the staging object is gone
    if outcome == "failed":
        assert [e["data"]["code"] for e in alice.frames("upload:error")] == ["size_mismatch"]
        return
    # (served to another member through a message, as in the review)
    _, connect, _ = apps
    message_app = stack.handler("MessageFunction")
    alice_chat = Client(stack, message_app, connect, alice.user_id)
    conversation = new_conversation(alice_chat, Client(stack, message_app, connect, bob.user_id))
    attachment = {"uploadId": start["uploadId"]}
    message = {
        "conversationId": conversation,
        "clientMessageId": "c1",
        "body": "",
        "attachments": [attachment],
    }
    alice_chat.ok("message:send", message)
    shared = bob.ok("upload:get", {"uploadId": start["uploadId"], "conversationId": conversation})
    assert http("GET", shared["url"])[2] == original
    assert len(alice.frames("upload:complete")) == 1


def test_processing_that_fails_for_a_transient_reason_is_retried(
    stack: Stack, apps: Any, people: Any
) -> None:
    _, _, processor = apps
    (alice,) = people("alice")
    run_processor(stack, processor)  # the queue is shared: events other tests left go first
    data = pdf_of_size(4000)
    start = alice.ok(
        "upload:start", {"fileName": "t.pdf", "contentType": "application/pdf", "size": len(data)}
    )
    http("PUT", start["url"], data, start["headers"])
    store = processor.uploads.store
    working = store.client
    # Given S3 unreachable for the processor (a real client aimed at a closed port)
    store._client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    try:
        responses = run_processor_once(stack, processor)
    finally:
        store._client = working
    # Then the record is reported failed (SQS retries it) and the upload is handed back
    assert [len(r["batchItemFailures"]) for r in responses] == [1]
    assert upload_record(stack, start["uploadId"])["state"] == "uploading"
    assert not alice.frames("upload:error")
    # When SQS delivers it again (here: at once), it completes
    sqs = stack.client("sqs")
    sqs.change_message_visibility(
        QueueUrl=stack.resources["UploadEventsQueue"],
        ReceiptHandle=responses[0]["_receipt"],
        VisibilityTimeout=0,
    )
    run_processor(stack, processor)
    assert upload_record(stack, start["uploadId"])["state"] == "complete"
    assert len(alice.frames("upload:complete")) == 1


def test_parts_s3_will_not_assemble_are_a_conflict_not_a_crash(people: Any) -> None:
    (alice,) = people("alice")
    start = alice.ok(
        "upload:start",
        {"fileName": "s.pdf", "contentType": "application/pdf", "size": 10 * MiB},
    )
    # Given a first part far smaller than S3's 5 MiB minimum (a buggy client)
    small = pdf_of_size(MiB)
    parts = [
        put_parts([start["parts"][0]], small, start["partSize"])[0],
        put_parts([start["parts"][1]], pdf_of_size(2 * start["partSize"]), start["partSize"])[0],
    ]
    reply = alice.call("upload:complete", {"uploadId": start["uploadId"], "parts": parts})
    assert reply["error"]["code"] == "conflict"
    assert "EntityTooSmall" in reply["error"]["message"]
    assert alice.ok("upload:get", {"uploadId": start["uploadId"]})["state"] == "uploading"


def test_attachments_are_the_senders_completed_uploads_and_members_may_download_them(
    stack: Stack, apps: Any, people: Any
) -> None:
    _, connect, processor = apps
    message_app = stack.handler("MessageFunction")
    alice, bob, eve = people("alice", "bob", "eve")
    alice_chat = Client(stack, message_app, connect, alice.user_id)
    bob_chat = Client(stack, message_app, connect, bob.user_id)
    conversation = new_conversation(alice_chat, bob_chat)
    photo = png_with_exif()
    start = alice.ok(
        "upload:start", {"fileName": "me.png", "contentType": "image/png", "size": len(photo)}
    )
    assert http("PUT", start["url"], photo, start["headers"])[0] == 200
    alice.ok("upload:complete", {"uploadId": start["uploadId"]})
    run_processor(stack, processor)
    attachment = {
        "uploadId": start["uploadId"],
        "fileName": "me.png",
        "contentType": "image/png",
        "size": len(photo),
    }
    pending = alice.ok(
        "upload:start", {"fileName": "b.png", "contentType": "image/png", "size": len(photo)}
    )

    def send_with(client: Client, *attachments: dict[str, Any]) -> dict[str, Any]:
        return client.call(
            "message:send",
            {
                "conversationId": conversation,
                "clientMessageId": uuid.uuid4().hex,
                "body": "",
                "attachments": list(attachments),
            },
        )

    refused = [
        send_with(bob_chat, attachment),  # not bob's upload
        send_with(alice_chat, {**attachment, "contentType": "application/pdf"}),  # not what it is
        send_with(alice_chat, {**attachment, "size": len(photo) + 1}),
        send_with(alice_chat, {"uploadId": pending["uploadId"]}),  # not complete
        send_with(alice_chat, attachment, attachment),  # twice
        send_with(alice_chat, {"uploadId": "no-such-upload"}),
    ]
    assert [r["error"]["code"] for r in refused] == ["bad_request"] * len(refused)
    # Nothing was stored, and before a message attaches it nobody else may see it
    assert alice_chat.ok("message:history", {"conversationId": conversation})["lastSeq"] == 0
    shared = {"uploadId": start["uploadId"], "conversationId": conversation}
    assert bob.error("upload:get", shared) == "not_found"

    assert send_with(alice_chat, attachment)["data"]["seq"] == 1
    # A member downloads it through the conversation; the same request without the
    # conversation, or by someone outside it, is not_found
    got = bob.ok("upload:get", shared)
    assert (got["fileName"], got["contentType"]) == ("me.png", "image/png")
    assert got["state"] == "complete"
    status, _, stored = http("GET", got["url"])
    assert status == 200 and stored[:8] == b"\x89PNG\r\n\x1a\n"
    assert http("GET", got["thumbnailUrl"])[0] == 200
    assert bob.error("upload:get", {"uploadId": start["uploadId"]}) == "not_found"
    assert eve.error("upload:get", shared) == "not_found"
    # The message carries the verified details
    message = bob_chat.ok("message:history", {"conversationId": conversation})["messages"][0]
    assert message["attachments"] == [attachment]


LONG_WINDOW = str(10**9)  # seconds; the next boundary is in 2033


def test_upload_start_is_rate_limited_per_user_and_a_refusal_creates_nothing(
    stack: Stack, apps: Any
) -> None:
    _, connect, _ = apps
    # Windows are fixed and aligned to the epoch: one of ~31 years cannot end mid-test
    # (a 60 s one did, on a loaded CI machine, and let the fourth start through).
    limited = stack.handler(
        "UploadFunction", UPLOAD_START_LIMIT_PER_USER="3", UPLOAD_START_WINDOW_SECONDS=LONG_WINDOW
    )
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, limited, connect, f"alice-{tag}")
    bob = Client(stack, limited, connect, f"bob-{tag}")
    start = {"fileName": "a.pdf", "contentType": "application/pdf", "size": 1000}
    big = {**start, "size": 10 * MiB}  # multipart: would create an S3 multipart upload
    ids = [alice.ok("upload:start", start)["uploadId"] for _ in range(3)]
    dynamodb, s3 = stack.client("dynamodb"), stack.client("s3")
    bucket = stack.resources["UploadsBucket"]
    items_before = dynamodb.scan(TableName=stack.table("UploadsTable"), Select="COUNT")["Count"]
    multipart_before = len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    # When the fourth and fifth come inside the window
    refused = [alice.call("upload:start", data) for data in (start, big)]
    # Then they are refused, with when to retry, and nothing was created for them
    assert [r["error"]["code"] for r in refused] == ["rate_limited", "rate_limited"]
    assert all(r["error"]["details"]["retryAfterMs"] > 0 for r in refused)
    assert (
        dynamodb.scan(TableName=stack.table("UploadsTable"), Select="COUNT")["Count"]
        == items_before
    )
    assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == multipart_before
    assert not alice.frames()
    # And the limit is per user: bob still starts, and alice's uploads work
    assert bob.ok("upload:start", start)["method"] == "put"
    assert alice.ok("upload:get", {"uploadId": ids[0]})["state"] == "uploading"


def test_every_presigned_write_is_signed_for_its_exact_length(people: Any) -> None:
    (alice,) = people("alice")
    put = alice.ok(
        "upload:start", {"fileName": "a.pdf", "contentType": "application/pdf", "size": 4321}
    )
    size = 11 * MiB + 7
    multipart = alice.ok(
        "upload:start", {"fileName": "b.pdf", "contentType": "application/pdf", "size": size}
    )

    def signed(url: str) -> dict[str, list[str]]:
        return parse_qs(urlsplit(url).query)

    # The PUT URL signs Content-Length (S3 refuses another length) and lives ~a minute
    query = signed(put["url"])
    assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")
    assert int(query["X-Amz-Expires"][0]) == 61
    # Each part URL signs its own length; together they are exactly the declared size
    lengths = []
    for part in multipart["parts"]:
        query = signed(part["url"])
        assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")
        start, end = part_range(part["partNumber"], multipart["partSize"], size)
        lengths.append(end - start)
    assert sum(lengths) == size and len(lengths) == 3
