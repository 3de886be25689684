"""The Python client package (switchboard_client) and its CLI against the devserver: real
sockets, the template's functions, moto. Every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard_client import Backoff, Client, EventStream, wire
from tests.support.images import http, pdf_of_size

from .clients import connection_items, eventually, presence_set
from .conftest import ROOT, RunningDevserver

pytestmark = pytest.mark.e2e

TIMEOUT = 30.0  # the resume goes through the listing + sync, the backlog through streams


def _users(*names: str) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{name}-{tag}" for name in names]


def _client(ds: RunningDevserver, user_id: str, **options: Any) -> Client:
    options.setdefault("backoff", Backoff(base=0.05, cap=0.5))
    return Client(
        ds.ws,
        ds.token(user_id),
        user_agent=f"switchboard-pyclient-e2e/{user_id}/{uuid.uuid4().hex[:8]}",
        **options,
    )


@contextlib.asynccontextmanager
async def _connected(client: Client) -> AsyncIterator[EventStream]:
    """Subscribed before connecting (the resume delivers during connect), closed at the end."""
    stream = client.events("message:new")
    try:
        await client.connect(timeout=TIMEOUT)
        yield stream
    finally:
        stream.close()
        await client.close()


async def _bodies(stream: EventStream, count: int) -> list[tuple[int, str]]:
    out = []
    for _ in range(count):
        event = await stream.get(timeout=TIMEOUT)
        assert event.message is not None
        out.append((event.message.seq, event.message.body))
    return out


async def _nothing_more(
    ds: RunningDevserver,
    stream: EventStream,
    receiver: Client,
    sender: Client,
    conversation: str,
    old: frozenset[str] = frozenset(),
) -> None:
    """Nothing but what was expected reached the receiver's stream: once the server has
    pushed the backlog of the receiver's (new) connection - the Connections-stream
    consumer logs it - the sender writes once more, and that message is the next event
    (a duplicate or a stray message would come first: the stream is in seq order)."""

    def connection_ids() -> list[str]:
        items = connection_items(ds, receiver.user_id)
        return [
            i["connectionId"]["S"]
            for i in items
            if i["device"]["S"] == receiver.user_agent and i["connectionId"]["S"] not in old
        ]

    (connection_id,) = await eventually(connection_ids, TIMEOUT)
    await eventually(
        lambda: any(
            "connection opened" in line and connection_id in line for line in ds.log().splitlines()
        ),
        TIMEOUT,
    )
    sent = await sender.send_message(conversation, "sentinel")
    assert await _bodies(stream, 1) == [(sent.seq, "sentinel")]


async def test_the_client_that_was_away_gets_every_message_once_in_order(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    a = _client(devserver, alice)
    b = _client(devserver, bob)
    async with _connected(a) as a_messages, _connected(b) as b_messages:
        conversation = (await a.create_conversation([bob])).conversationId
        await a.send_message(conversation, "hi bob")
        assert await _bodies(b_messages, 1) == [(1, "hi bob")]
        await b.send_message(conversation, "hi alice")
        assert await _bodies(a_messages, 1) == [(2, "hi alice")]

        # Bob goes away (the process ends; he keeps his cursors), alice writes on.
        saved = b.cursors
        assert saved == {conversation: 2}
        await b.close()
        await eventually(lambda: not presence_set(devserver, bob), TIMEOUT)
        for i in range(3, 13):
            assert (await a.send_message(conversation, f"while away {i}")).seq == i

        # He comes back: every message once, in order -- from the server's backlog push
        # and the client's own sync, whichever comes first; the other is dropped.
        back = _client(devserver, bob, cursors=saved)
        async with a.events("message:delivered") as delivered, _connected(back) as messages:
            got = await _bodies(messages, 10)
            assert got == [(i, f"while away {i}") for i in range(3, 13)]
            await _nothing_more(devserver, messages, back, a, conversation)
            # Acked automatically: alice is told bob's device got everything up to 12.
            while True:
                event = await delivered.get(timeout=TIMEOUT)
                if event.data == {"conversationId": conversation, "seq": 12, "userId": bob}:
                    break


async def test_a_dropped_connection_reconnects_by_itself_and_loses_nothing(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    a = _client(devserver, alice)
    b = _client(devserver, bob)
    async with _connected(a), _connected(b) as b_messages:
        states = b.events("client:disconnected", "client:connected")
        conversation = (await a.create_conversation([bob])).conversationId
        await a.send_message(conversation, "before")
        assert await _bodies(b_messages, 1) == [(1, "before")]

        # The server closes bob's socket (management API DELETE) while alice keeps sending.
        (item,) = [
            i
            for i in await asyncio.to_thread(connection_items, devserver, bob)
            if i["device"]["S"] == b.user_agent
        ]
        management = devserver.management_client()
        await asyncio.to_thread(
            management.delete_connection, ConnectionId=item["connectionId"]["S"]
        )
        sends = [a.send_message(conversation, f"during {i}") for i in range(2, 12)]
        for send in sends:
            await send  # in order: seqs 2..11

        assert (await states.get(timeout=TIMEOUT)).type == "client:disconnected"
        assert (await states.get(timeout=TIMEOUT)).type == "client:connected"
        got = await _bodies(b_messages, 10)
        assert got == [(i, f"during {i}") for i in range(2, 12)]
        await _nothing_more(
            devserver, b_messages, b, a, conversation, frozenset({item["connectionId"]["S"]})
        )
        assert b.stats.connections == 2
        states.close()


async def _line(process: asyncio.subprocess.Process, needle: str, seen: list[str]) -> str:
    """Reads the CLI's stdout until a line containing ``needle`` (bounded)."""
    assert process.stdout is not None
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
        if not raw:
            raise AssertionError(f"CLI ended before {needle!r}; it printed {seen}")
        line = raw.decode().rstrip("\n")
        seen.append(line)
        if needle in line:
            return line


async def test_the_cli_chats_with_another_client(devserver: RunningDevserver) -> None:
    alice, bob, carol = _users("alice", "bob", "carol")
    b = _client(devserver, bob)
    async with _connected(b) as b_messages:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "switchboard_client",
            "chat",
            "--user",
            alice,
            "--url",
            devserver.ws,
            "--to",
            bob,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        seen: list[str] = []
        try:
            assert process.stdin is not None
            await _line(process, f"connected as {alice}", seen)
            opened = await _line(process, "* writing to ", seen)
            conversation = opened.split()[3]

            # What is typed is sent ...
            process.stdin.write(b"hello from the terminal\n")
            await process.stdin.drain()
            assert await _bodies(b_messages, 1) == [(1, "hello from the terminal")]
            await _line(process, "* sent #1", seen)

            # ... what arrives is printed (and marked read), typing too, once bob accepted
            # the request alice's first message was (typing and receipts flow between
            # contacts only): the CLI says so.
            await b.membership.accept(conversation)
            await _line(process, f"* {bob} accepted {conversation}", seen)
            async with b.events("message:read") as receipts:
                await b.typing(conversation)
                await _line(process, f"* {bob} is typing in {conversation}", seen)
                await b.send_message(conversation, "hello from python")
                await _line(process, f"[{conversation} #2] {bob}: hello from python", seen)
                read = await receipts.get(timeout=TIMEOUT)
                assert read.data == {"conversationId": conversation, "seq": 2, "userId": alice}

            # A stranger's conversation is shown as a request, which the CLI user accepts:
            # carol's typing reaches them only then.
            c = _client(devserver, carol)
            async with _connected(c), c.events("conversation:accepted") as accepted:
                request = (await c.create_conversation([alice])).conversationId
                await _line(process, f"* request from {carol} in {request}: /accept", seen)
                process.stdin.write(b"/requests\n")
                await process.stdin.drain()
                await _line(process, f"* request {request} with {carol}: 0 unread", seen)
                process.stdin.write(f"/accept {request}\n".encode())
                await process.stdin.drain()
                await _line(process, f"* accepted {request}", seen)
                told = (await accepted.get(timeout=TIMEOUT)).data
                assert (told["conversationId"], told["userId"]) == (request, alice)
                await c.typing(request)
                await _line(process, f"* {carol} is typing in {request}", seen)

            # End of input ends the session cleanly.
            process.stdin.close()
            assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0, seen
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_call_helpers_ring_answer_and_hang_up(devserver: RunningDevserver) -> None:
    alice, bob = _users("alice", "bob")
    a = _client(devserver, alice)
    b = _client(devserver, bob)
    async with _connected(a), _connected(b):
        # Calls ring only contacts: bob accepts alice's conversation first
        await b.membership.accept((await a.create_conversation([bob])).conversationId)
        a_calls = a.events("call:answered", "call:ice-candidate", "call:ended")
        b_calls = b.events("call:incoming", "call:ended")
        offer = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}
        ringing = await a.calls.initiate(bob, "video", offer)
        assert ringing.state == "ringing"
        incoming = await b_calls.get(timeout=TIMEOUT)
        assert incoming.type == "call:incoming"
        call = incoming.parsed()  # the typed push: wire.CallIncoming
        assert isinstance(call, wire.CallIncoming) and call.callId == ringing.callId
        assert call.callerId == alice and call.offer is not None
        assert call.offer.model_dump() == offer

        answer = {"type": "answer", "sdp": "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n"}
        assert (await b.calls.answer(ringing.callId, answer)).state == "active"
        answered = await a_calls.get(timeout=TIMEOUT)
        assert answered.type == "call:answered" and answered.data["answer"] == answer
        candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
        await b.calls.ice_candidate(ringing.callId, candidate)
        relayed = await a_calls.get(timeout=TIMEOUT)
        assert relayed.type == "call:ice-candidate" and relayed.data["candidate"] == candidate
        active = await a.calls.get_active()
        assert active is not None and active.callId == ringing.callId

        # A screen share in the 1:1 call: the renegotiation offer (the screen's track) and
        # the state reach bob's in-call connection, and call:get-active shows it
        async with b.events("call:offer", "call:media") as b_share:
            reoffer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
            assert (await a.calls.offer(ringing.callId, reoffer)).sent
            got = await b_share.get(timeout=TIMEOUT)
            assert (got.type, got.data["offer"], got.data["fromUserId"]) == (
                "call:offer",
                reoffer,
                alice,
            )
            assert (await a.calls.media(ringing.callId, screen=True)).media.screen is True
            media = await b_share.get(timeout=TIMEOUT)
            assert media.type == "call:media" and media.data["userId"] == alice
            assert (media.data["screen"], media.data["video"]) == (True, True)
        seen = await b.calls.get_active()
        assert seen is not None
        [mine] = [p for p in seen.participants if p.userId == alice]
        assert mine.media is not None and mine.media.screen is True

        await a.calls.end(ringing.callId)
        ended = await b_calls.get(timeout=TIMEOUT)
        assert ended.type == "call:ended" and ended.data["reason"] == "hangup"
        assert await b.calls.get_active() is None
        a_calls.close()
        b_calls.close()


async def test_upload_helper_puts_to_s3_with_progress_and_returns_the_verdict(
    devserver: RunningDevserver,
) -> None:
    (alice,) = _users("alice")
    a = _client(devserver, alice)
    async with _connected(a):
        for size in (200_000, 9 * 1024 * 1024 + 17):  # one PUT; two multipart parts
            data = pdf_of_size(size)
            progress: list[tuple[int, int]] = []
            result = await a.uploads.upload(
                data,
                "catalogue.pdf",
                "application/pdf",
                on_progress=lambda sent, total: progress.append((sent, total)),
            )
            assert progress[-1] == (size, size)
            assert [sent for sent, _ in progress] == sorted({sent for sent, _ in progress})
            assert len(progress) > 1
            assert result.size == size
            status, _, stored = await asyncio.to_thread(http, "GET", result.url)
            assert status == 200 and stored == data
            assert (await a.uploads.get(result.uploadId)).state == "complete"


async def test_group_call_media_recording_and_voice_through_the_python_client(
    devserver: RunningDevserver,
) -> None:
    media = ROOT / "tests" / "support" / "media"
    alice, bob = _users("alice", "bob")
    # A cold upload function (its first import) on a busy machine may take a while.
    a = _client(devserver, alice, request_timeout=TIMEOUT)
    b = _client(devserver, bob, request_timeout=TIMEOUT)
    async with _connected(a), _connected(b):
        conversation = (await a.create_conversation([bob])).conversationId
        await b.membership.accept(conversation)  # calls ring only accepted members
        b_events = b.events("call:incoming", "call:media", "call:recording", "message:new")
        call = await a.calls.initiate([bob], "video", conversation_id=conversation)
        assert (await b_events.get(timeout=TIMEOUT)).type == "call:incoming"
        await b.calls.join(call.callId)
        # Mute state reaches the other participant
        assert (await a.calls.media(call.callId, audio=False)).media.audio is False
        pushed = await b_events.get(timeout=TIMEOUT)
        assert (pushed.type, pushed.data["audio"]) == ("call:media", False)
        # A recording is announced (push and system entry), then uploaded and posted
        await a.calls.recording(call.callId, "started")
        kinds = {(await b_events.get(timeout=TIMEOUT)).type for _ in range(2)}
        assert kinds == {"call:recording", "message:new"}
        # The file lasts 1,981 ms: it is recorded for that long before it is stopped and
        # uploaded (the server refuses a recording longer than it was announced for)
        await asyncio.sleep(2.0)
        await a.calls.recording(call.callId, "stopped")
        recording = (media / "recording.webm").read_bytes()
        done = await a.uploads.upload(
            recording, "call.webm", "video/webm", purpose="recording", call_id=call.callId
        )
        assert done.durationMs == 1981
        # A voice message: the server's duration, the client's waveform
        voice = await a.uploads.upload(
            (media / "voice.ogg").read_bytes(),
            "voice.ogg",
            "audio/ogg",
            purpose="voice",
            conversation_id=conversation,
        )
        attachment = {
            "uploadId": voice.uploadId,
            "kind": "voice",
            "durationMs": voice.durationMs,
            "waveform": [10, 200, 40],
        }
        await a.send_message(conversation, "", attachments=[attachment])
        while (event := await b_events.get(timeout=TIMEOUT)).type != "message:new" or not (
            event.data.get("attachments")
        ):
            pass
        assert event.data["attachments"] == [attachment] and voice.durationMs == 1500
        await a.calls.end(call.callId)
        b_events.close()


async def test_search_finds_a_message_and_history_opens_around_it(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    word = f"kettle{uuid.uuid4().hex[:6]}"
    a, b = _client(devserver, alice), _client(devserver, bob)
    async with _connected(a), _connected(b):
        conversation = (await a.create_conversation([bob])).conversationId
        await b.membership.accept(conversation)  # a request is in no recipient's own index
        for i in range(1, 6):
            await a.send_message(conversation, f"note {i}")
        sent = await a.send_message(conversation, f"the {word} is BOILING")
        for i in range(7, 10):
            await a.send_message(conversation, f"note {i}")

        async def found() -> Any:
            results = await b.search(f"{word} boil")  # the last word as a prefix
            return results if results.hits else None

        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while (results := await found()) is None:
            assert asyncio.get_running_loop().time() < deadline, "never indexed"
            await asyncio.sleep(0.1)
        [hit] = results.hits
        assert (hit.conversationId, hit.seq, hit.senderId) == (conversation, sent.seq, alice)
        assert [hit.snippet[s:e] for s, e in hit.highlights] == [word, "BOILING"]
        assert results.cursor is None
        page = await b.history(conversation, around_seq=hit.seq, limit=4)
        assert [m.seq for m in page.messages] == [4, 5, 6, 7]


async def test_a_client_that_was_away_learns_of_edits_deletes_and_reactions_on_resume(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    a = _client(devserver, alice)
    b = _client(devserver, bob)
    async with _connected(a), _connected(b) as b_messages:
        conversation = (await a.create_conversation([bob])).conversationId
        # bob accepts: his resume lists his accepted conversations (a request is listed
        # in its own folder, which the client's resume does not read)
        await b.membership.accept(conversation)
        for i in range(1, 6):
            await a.send_message(conversation, f"message {i}")
        assert [seq for seq, _ in await _bodies(b_messages, 5)] == [1, 2, 3, 4, 5]
        # Live: bob's client sees alice's edit as a push, and its change cursor follows
        async with b.events("message:updated") as updates:
            edited = await a.messages.edit(conversation, 1, "message one")
            event = await updates.get(timeout=TIMEOUT)
            assert event.parsed() == wire.MessageUpdated.model_validate(edited.model_dump())
        await eventually(lambda: b.messages.change_cursors.get(conversation) == 1, TIMEOUT)

        # Bob goes away, keeping his cursors; alice edits, deletes and reacts meanwhile.
        saved, saved_changes = b.cursors, dict(b.messages.change_cursors)
        await b.close()
        await eventually(lambda: not presence_set(devserver, bob), TIMEOUT)
        await a.messages.edit(conversation, 2, "message two")
        await a.messages.delete(conversation, 3)
        reacted = await a.messages.react(conversation, 2, "🎉")
        await a.messages.edit(conversation, 5, "message five")
        assert (reacted.change, reacted.version) == (4, 2)

        back = _client(devserver, bob, cursors=saved, change_cursors=saved_changes)
        changed = back.events("message:changed")
        try:
            async with _connected(back):
                got = {}
                for _ in range(3):  # seqs 2, 3, 5: each once, as they are now
                    event = await changed.get(timeout=TIMEOUT)
                    assert event.message is not None
                    got[event.message.seq] = event.message
                assert got[2].body == "message two" and got[2].version == 2
                assert got[2].raw["reactions"] == [{"emoji": "🎉", "count": 1, "userIds": [alice]}]
                assert got[3].deleted_at is not None and got[3].body == ""
                assert got[5].body == "message five" and got[5].edited_at is not None
                assert back.messages.change_cursors[conversation] == 5
                # A live change after the resume (the sentinel): it is change 6, the cursor
                # moves over it, and the resume read nothing more than the three above.
                async with back.events("message:reactions") as reactions:
                    await a.messages.react(conversation, 4, "👍")
                    assert (await reactions.get(timeout=TIMEOUT)).data["change"] == 6
                assert back.messages.change_cursors[conversation] == 6
                with pytest.raises(TimeoutError):
                    await changed.get(timeout=0)
        finally:
            changed.close()
