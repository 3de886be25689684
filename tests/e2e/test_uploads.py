"""Uploads end to end through the devserver: real WebSocket clients, real HTTP uploads to
the presigned URLs (moto's S3, with the bucket's CORS), the S3 notification -> SQS ->
processor path of template.yaml, and pushes to every device of the owner."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.images import (
    elf_executable,
    exif_of,
    http,
    pdf_of_size,
    png_with_exif,
    put_parts,
    size_of,
)

from .clients import Client, Session, eventually
from .conftest import RunningDevserver

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
PROCESSING_TIMEOUT = 45.0  # S3 event -> SQS poll -> processor cold start (Pillow) on 2 cores
ORIGIN = "http://127.0.0.1:8081"  # a page of the devserver's web app


async def start(client: Client, name: str, content_type: str, size: int) -> dict[str, Any]:
    return await client.call(
        "upload:start", {"fileName": name, "contentType": content_type, "size": size}
    )


def object_exists(ds: RunningDevserver, key_suffix: str) -> bool:
    listed = ds.aws("s3").list_objects_v2(Bucket=ds.resources["UploadsBucket"], Prefix="uploads/")
    return any(o["Key"].endswith(key_suffix) for o in listed.get("Contents", []))


async def test_small_png_via_put_is_stripped_thumbnailed_and_pushed_to_every_device(
    devserver: RunningDevserver,
) -> None:
    async with Session(devserver) as session:
        phone = await session.connect("up-alice")
        laptop = await session.connect("up-alice")
        photo = png_with_exif()
        upload = await start(phone, "holiday.png", "image/png", len(photo))
        assert upload["method"] == "put"
        # The browser's preflight and PUT to the presigned URL pass CORS
        status, headers, _ = await asyncio.to_thread(
            http,
            "OPTIONS",
            upload["url"],
            None,
            {
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert status == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
        status, headers, _ = await asyncio.to_thread(
            http, "PUT", upload["url"], photo, {**upload["headers"], "Origin": ORIGIN}
        )
        assert status == 200 and "ETag" in headers["Access-Control-Expose-Headers"]
        done = await phone.call("upload:complete", {"uploadId": upload["uploadId"]})
        assert done["state"] in ("uploaded", "processing", "complete")
        for device in (phone, laptop):
            await device.wait_for("upload:processing", timeout=PROCESSING_TIMEOUT)
            result = await device.wait_for("upload:complete", timeout=PROCESSING_TIMEOUT)
        assert result["uploadId"] == upload["uploadId"] and "thumbnailUrl" in result
        status, _, stored = await asyncio.to_thread(http, "GET", result["url"])
        assert status == 200 and exif_of(stored) == {} and size_of(stored) == size_of(photo)
        status, _, thumb = await asyncio.to_thread(http, "GET", result["thumbnailUrl"])
        assert status == 200 and max(size_of(thumb)) == 256


async def test_large_file_via_multipart_reports_progress_per_part_to_100_percent(
    devserver: RunningDevserver,
) -> None:
    async with Session(devserver) as session:
        alice = await session.connect("up-bob")
        other_device = await session.connect("up-bob")
        data = pdf_of_size(12 * MiB + 4321)
        upload = await start(alice, "catalogue.pdf", "application/pdf", len(data))
        assert upload["method"] == "multipart" and upload["partSize"] >= 5 * MiB
        assert len(upload["parts"]) == 3
        parts = []
        for part in upload["parts"]:
            # One part at a time, reported as soon as it is up (as the web client does)
            (done,) = await asyncio.to_thread(put_parts, [part], data, upload["partSize"])
            reply = await alice.call("upload:part-done", {"uploadId": upload["uploadId"], **done})
            assert reply["partNumber"] == part["partNumber"]
            parts.append(done)
        expected = [
            min(100, n * upload["partSize"] * 100 // len(data)) if n < 3 else 100 for n in (1, 2, 3)
        ]
        for device in (alice, other_device):
            await device.wait_for("upload:progress", lambda d: d["percent"] == 100)
            progress = [f["data"] for f in device.find("upload:progress")]
            assert [p["percent"] for p in progress] == expected
            assert progress[-1]["bytes"] == len(data)
        await alice.call("upload:complete", {"uploadId": upload["uploadId"], "parts": parts})
        await alice.wait_for("upload:processing", timeout=PROCESSING_TIMEOUT)
        result = await alice.wait_for("upload:complete", timeout=PROCESSING_TIMEOUT)
        assert result["size"] == len(data) and "thumbnailUrl" not in result
        status, _, body = await asyncio.to_thread(http, "GET", result["url"])
        assert status == 200 and body == data


@pytest.mark.parametrize(
    ("content_type", "declared", "actual", "code"),
    [
        ("application/pdf", 3000, pdf_of_size(9000), "size_mismatch"),
        ("image/png", 8192, elf_executable(8192), "type_mismatch"),  # an executable as .png
    ],
)
async def test_stored_object_unlike_the_declaration_is_refused_and_deleted(
    devserver: RunningDevserver, content_type: str, declared: int, actual: bytes, code: str
) -> None:
    async with Session(devserver) as session:
        alice = await session.connect(f"up-carol-{code}")
        upload = await start(alice, "file.png", content_type, declared)
        status, _, _ = await asyncio.to_thread(
            http, "PUT", upload["url"], actual, upload["headers"]
        )
        assert status == 200
        await alice.call("upload:complete", {"uploadId": upload["uploadId"]})
        error = await alice.wait_for("upload:error", timeout=PROCESSING_TIMEOUT)
        assert error == {"uploadId": upload["uploadId"], "code": code, "message": error["message"]}
        await eventually(lambda: not object_exists(devserver, upload["uploadId"]))
        await alice.sentinel()
        assert not alice.find("upload:complete")
        state = await alice.call("upload:get", {"uploadId": upload["uploadId"]})
        assert state["state"] == "failed" and state["error"]["code"] == code


async def test_another_user_gets_not_found_and_the_upload_survives(
    devserver: RunningDevserver,
) -> None:
    async with Session(devserver) as session:
        alice = await session.connect("up-dave")
        mallory = await session.connect("up-mallory")
        data = pdf_of_size(9 * MiB)
        upload = await start(alice, "contract.pdf", "application/pdf", len(data))
        (part,) = await asyncio.to_thread(put_parts, upload["parts"][:1], data, upload["partSize"])
        upload_id = upload["uploadId"]
        # not_found, not forbidden: a stranger learns nothing, not even that the id exists
        assert (
            await mallory.error_code("upload:part-done", {"uploadId": upload_id, **part})
            == "not_found"
        )
        assert await mallory.error_code("upload:complete", {"uploadId": upload_id}) == "not_found"
        assert await mallory.error_code("upload:abort", {"uploadId": upload_id}) == "not_found"
        assert await mallory.error_code("upload:get", {"uploadId": upload_id}) == "not_found"
        unknown = {"uploadId": "Zz" * 12}
        for action in ("upload:complete", "upload:abort", "upload:get"):
            assert await alice.error_code(action, unknown) == "not_found"
        await mallory.sentinel()  # the refusals were answered: any push of theirs came first
        assert not mallory.find("upload:progress")
        # The owner's upload is untouched: the part still counts, and abort works
        reply = await alice.call("upload:part-done", {"uploadId": upload_id, **part})
        assert reply["bytes"] == upload["partSize"]
        assert (await alice.call("upload:abort", {"uploadId": upload_id}))["state"] == "aborted"


async def test_start_refuses_disallowed_types_and_sizes(devserver: RunningDevserver) -> None:
    async with Session(devserver) as session:
        alice = await session.connect("up-erin")
        exe = await alice.request(
            "upload:start",
            {"fileName": "setup.exe", "contentType": "application/x-msdownload", "size": 100},
        )
        assert exe["error"]["code"] == "bad_request"
        too_big = await alice.request(
            "upload:start",
            {"fileName": "movie.pdf", "contentType": "application/pdf", "size": 200 * MiB},
        )
        assert too_big["error"]["code"] == "payload_too_large"
        assert too_big["error"]["details"] == {"maxBytes": 100 * MiB}
