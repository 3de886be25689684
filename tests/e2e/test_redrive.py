"""Redrive in one command (scripts/redrive.py, `make redrive`) on the devserver: a push
that failed every retry sits in DeliveryDLQ; after the cause is gone, one command moves
it back to DeliveryQueue and its consumer delivers it to the recipient's open connection
(no sync). A stream DLQ (batch descriptions, no source queue) is refused untouched.

moto 5.2 has no StartMessageMoveTask (it answers 500), so on the devserver the command
takes its emulator fallback; against AWS it uses the move task itself (scripts/redrive.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .clients import Session, clear_faults, eventually, peek_queue, queue_url, set_faults
from .conftest import RunningDevserver, StartDevserver
from .test_analytics import api_get

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STREAM_TIMEOUT = 45.0


def redrive(ds: RunningDevserver, dlq: str) -> subprocess.CompletedProcess[str]:
    return operator_command(ds, "scripts/redrive.py", dlq)


def operator_command(ds: RunningDevserver, *command: str) -> subprocess.CompletedProcess[str]:
    """An operator's script, run as against AWS but with the endpoint URL on moto."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": ds.moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }
    return subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def depth(ds: RunningDevserver, logical_id: str) -> int:
    attributes = ds.aws("sqs").get_queue_attributes(
        QueueUrl=queue_url(ds, logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


async def test_redrive_returns_a_dead_letter_push_to_its_queue_and_it_is_delivered(
    start_devserver: StartDevserver,
) -> None:
    ds = await asyncio.to_thread(start_devserver)  # its own: the redrive moves every message
    async with Session(ds) as s:
        a = await s.connect("redrive-alice")
        b = await s.connect("redrive-bob", with_id=True)
        conversation = await a.create_conversation([b.user_id])
        first = await a.send(conversation, "before the storm")
        await b.wait_for_messages(conversation, {first["seq"]}, timeout=STREAM_TIMEOUT)
        # Given a push to bob that failed every retry (429s) and sits in the DLQ
        set_faults(ds, failures=[{"connectionId": b.connection_id, "status": 429, "count": 100}])
        try:
            lost = await a.send(conversation, "into the storm")
            await eventually(
                lambda: any(
                    json.loads(json.loads(body)["frame"])["data"].get("seq") == lost["seq"]
                    for body in peek_queue(ds, "DeliveryDLQ")
                ),
                timeout=60,
                interval=1.0,
            )
        finally:
            clear_faults(ds)  # the cause is fixed
        assert lost["seq"] not in b.messages[conversation]
        # When the operator redrives the DLQ in one command
        done = await asyncio.to_thread(redrive, ds, "DeliveryDLQ")
        assert done.returncode == 0, done.stderr
        assert "'moved': 1" in done.stdout and "emulator" in done.stdout
        # Then the push reaches bob's open connection (by push, no sync) and the DLQ is empty
        await b.wait_for_messages(conversation, {lost["seq"]}, timeout=STREAM_TIMEOUT)
        assert b.messages[conversation][lost["seq"]]["body"] == "into the storm"
        assert depth(ds, "DeliveryDLQ") == 0
        # And a stream DLQ is refused, its content untouched
        ds.aws("sqs").send_message(
            QueueUrl=queue_url(ds, "AnalyticsDLQ"), MessageBody='{"DDBStreamBatchInfo": {}}'
        )
        refused = await asyncio.to_thread(redrive, ds, "AnalyticsDLQ")
        assert refused.returncode == 2 and "stream batch descriptions" in refused.stderr
        assert depth(ds, "AnalyticsDLQ") == 1

    # And /api/analytics/queues tells the delivery queue's story exactly: three failed
    # receives of the push, then its delivery after the redrive (the consumer's EMF
    # metrics, through the devserver's CloudWatch Logs extraction into CloudWatch)
    def delivery() -> dict[str, Any]:
        status, queues = api_get(ds, "/api/analytics/queues", ds.token("ops", admin=True))
        assert status == 200, queues
        figures: dict[str, Any] = queues["delivery"]["processing"]
        return figures

    await eventually(lambda: delivery()["processed"] == 1, timeout=STREAM_TIMEOUT)
    figures = delivery()
    assert (figures["processed"], figures["failed"], figures["failureRate"]) == (1, 3, 0.75)
    assert figures["processingTimeMs"]["count"] == 4
