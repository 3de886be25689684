"""The backlog figure's own set-up (bench/e2e.py, figure 5), on the e2e devserver: the
messages it stores are what sends store (the sender's cursors moved over her own
messages, so none of her devices is owed them), the devserver is settled before the
reader connects, and the figure counts one catch-up, in order, once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bench.e2e import backlog, settle, store_backlog
from tests.e2e.clients import Client, Session
from tests.e2e.conftest import RunningDevserver
from tests.e2e.test_messaging import STREAM_TIMEOUT

pytestmark = pytest.mark.e2e

MESSAGES = 40  # one message:batch frame


async def test_the_stored_backlog_is_owed_to_the_reader_only(
    devserver: RunningDevserver,
) -> None:
    tag = uuid.uuid4().hex[:6]
    sender_id, reader_id = f"bench-sender-{tag}", f"bench-reader-{tag}"
    async with Session(devserver) as s:
        # Given a conversation whose 40 messages the bench stored straight into the tables
        sender = await s.connect(sender_id)
        conversation = await sender.create_conversation([reader_id])
        await asyncio.to_thread(store_backlog, devserver, conversation, sender_id, MESSAGES)
        await settle(devserver)  # TimeoutError if it is still busy
        # When the sender connects another device, then the reader connects
        second_device = await s.connect(sender_id)
        reader = Client(devserver, reader_id, backlog_batch=True)
        s.clients.append(await reader.connect())
        # Then the reader gets all 40, in order, in one message:batch frame
        await reader.wait_for_messages(conversation, range(1, MESSAGES + 1), STREAM_TIMEOUT)
        frames = [f for f in reader.pushes if f["type"].startswith("message:")]
        assert [f["type"] for f in frames] == ["message:batch"]
        assert [m["seq"] for m in frames[0]["data"]["messages"]] == list(range(1, MESSAGES + 1))
        # And the sender's second device (its record handled before the reader's) was owed
        # none of them: the first message it gets is the reader's reply, live
        await reader.send(conversation, "got them")
        await second_device.wait_for_messages(conversation, {MESSAGES + 1}, STREAM_TIMEOUT)
        assert second_device.message_pushes(conversation) == [MESSAGES + 1]


async def test_the_backlog_figure_counts_one_catch_up_in_order(
    devserver: RunningDevserver,
) -> None:
    said: list[str] = []
    figure = await backlog(devserver, MESSAGES, said.append, batch=True)
    assert figure["delivered"] == MESSAGES
    assert figure["in_order"] is True
    assert figure["duplicates"] == 0
    assert figure["frames"] == 1
    assert 0 < figure["first_arrival_seconds"] <= figure["delivery_seconds"]
    assert len(said) == 2  # stored (and settled), delivered
