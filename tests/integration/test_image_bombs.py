"""Decompression bombs of every image type, through the real processor in a process whose
memory (RLIMIT_AS) and CPU time (RLIMIT_CPU) the test limits: each ends in
``upload:error`` (``invalid_image``), and an honest photo in the same batches completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from devserver.workers import moto_client_environment
from tests.integration.conftest import ROOT, Stack
from tests.integration.test_messaging import Client
from tests.integration.test_uploads import run_processor, upload_record
from tests.support.images import BOMBS, http, png_with_exif

# Over what the imported processor already maps: well under the function's 1024 MB (the
# reviewer's 183-byte GIF took 1 GiB and 15 s of CPU).
MEMORY_MIB = 256
CPU_SECONDS = 30


def run_bounded_processor(stack: Stack) -> dict[str, Any]:
    env = {
        **{k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ},
        **stack.env("UploadProcessorFunction"),
        **moto_client_environment(stack.moto_url),
        "UPLOAD_EVENTS_QUEUE_URL": stack.resources["UploadEventsQueue"],
        "PYTHONPATH": f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT}",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MB of address space per arena
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.bounded_processor",
            str(MEMORY_MIB),
            str(CPU_SECONDS),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(180)
def test_every_bomb_ends_in_upload_error_within_a_memory_and_cpu_budget(stack: Stack) -> None:
    app = stack.handler("UploadFunction")
    connect = stack.handler("ConnectionFunction")
    processor = stack.handler("UploadProcessorFunction")
    run_processor(stack, processor)  # the queue is shared: events other tests left go first
    alice = Client(stack, app, connect, f"alice-{uuid.uuid4().hex[:6]}")
    photo = png_with_exif()
    # Given an honest photo and every bomb, uploaded through presigned PUTs
    uploads: dict[str, str] = {}
    for name, content_type, make in [("photo", "image/png", png_with_exif), *BOMBS]:
        data = photo if name == "photo" else make()
        start = alice.ok(
            "upload:start", {"fileName": name, "contentType": content_type, "size": len(data)}
        )
        assert http("PUT", start["url"], data, start["headers"])[0] == 200
        uploads[start["uploadId"]] = name
    # When a processor limited in memory and CPU handles them, a few to a batch
    result = run_bounded_processor(stack)
    # Then no record failed (none is retried), each bomb failed as an invalid image and
    # its owner was told, and the photo completed beside them
    states = {name: upload_record(stack, upload_id) for upload_id, name in uploads.items()}
    assert states.pop("photo")["state"] == "complete"
    assert {name: (r["state"], r.get("failureCode")) for name, r in states.items()} == {
        name: ("failed", "invalid_image") for name, _, _ in BOMBS
    }
    errors = {f["data"]["uploadId"]: f["data"]["code"] for f in alice.frames("upload:error")}
    assert errors == {u: "invalid_image" for u, name in uploads.items() if name != "photo"}
    assert [f["data"]["uploadId"] for f in alice.frames("upload:complete")] == [
        u for u, name in uploads.items() if name == "photo"
    ]
    assert [r["batchItemFailures"] for r in result["responses"]] == [[]] * len(result["responses"])
    assert sum(r["records"] for r in result["responses"]) == len(uploads)  # one event each
