"""Figure 8 - call signaling through the devserver (template.yaml on moto, real WebSocket
clients, tests/e2e/clients.py): how long a ring takes to reach the callee
(``call:initiate`` sent -> ``call:incoming`` received) and how long an ICE candidate takes
from one peer to the other (``call:ice-candidate`` sent -> the push received), one at a
time so the figure is the path's latency, not a queue's. The seed's claim is < 50 ms.

Each round: a fresh pair of users, a 1:1 call placed (timed), answered, ``candidates``
candidates relayed from the caller to the callee (each timed), hung up. Traffic goes to
127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.stats import summary
from tests.e2e.clients import Client
from tests.e2e.conftest import RunningDevserver, _start

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}
WAIT = 30.0


@contextlib.contextmanager
def devserver(workdir: Path) -> Iterator[RunningDevserver]:
    server = _start(workdir, ["--log-level", "WARNING", "--param", "StunUrls=", "--prewarm"])
    try:
        yield server
    finally:
        server.stop()


async def _round(ds: RunningDevserver, index: int, candidates: int) -> tuple[float, list[float]]:
    tag = uuid.uuid4().hex[:6]
    caller, callee = Client(ds, f"caller{index}-{tag}"), Client(ds, f"callee{index}-{tag}")
    await caller.connect()
    await callee.connect()
    try:
        # Calls ring only contacts: the pair first shares an accepted conversation.
        conversation = await caller.create_conversation([callee.user_id])
        await callee.call("conversation:accept", {"conversationId": conversation})
        sent = time.perf_counter()
        started = await caller.call(
            "call:initiate", {"calleeId": callee.user_id, "media": "audio", "offer": OFFER}
        )
        call_id = started["callId"]
        await callee.wait_for("call:incoming", lambda d: d.get("callId") == call_id, WAIT)
        ring_ms = (time.perf_counter() - sent) * 1000
        await callee.call("call:answer", {"callId": call_id, "answer": ANSWER})
        relays = []
        for n in range(candidates):
            line = f"candidate:{n} 1 udp 2122260223 127.0.0.1 {40000 + n} typ host"
            sent = time.perf_counter()
            await caller.call(
                "call:ice-candidate", {"callId": call_id, "candidate": {"candidate": line}}
            )
            await callee.wait_for(
                "call:ice-candidate", lambda d, line=line: d["candidate"]["candidate"] == line, WAIT
            )
            relays.append((time.perf_counter() - sent) * 1000)
        await caller.call("call:end", {"callId": call_id})
        return ring_ms, relays
    finally:
        await asyncio.gather(caller.close(), callee.close(), return_exceptions=True)


async def _measure(
    ds: RunningDevserver, rounds: int, candidates: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    await _round(ds, -1, 1)  # warm-up: the signaling function's first (cold) invocations
    rings: list[float] = []
    relays: list[float] = []
    for index in range(rounds):
        ring_ms, relayed = await _round(ds, index, candidates)
        rings.append(ring_ms)
        relays.extend(relayed)
    ring, relay = summary(rings), summary(relays)
    progress(
        f"signaling: ring p50 {ring['p50']:.0f} ms / p99 {ring['p99']:.0f} ms, "
        f"ICE relay p50 {relay['p50']:.0f} ms / p99 {relay['p99']:.0f} ms"
    )
    return {
        "rounds": rounds,
        "candidates_per_round": candidates,
        "ring_ms": ring,
        "ice_relay_ms": relay,
        "signaling_ring_p50_ms": ring["p50"],
        "signaling_ring_p99_ms": ring["p99"],
        "signaling_ice_p50_ms": relay["p50"],
        "signaling_ice_p99_ms": relay["p99"],
    }


def measure(
    workdir: Path,
    *,
    rounds: int,
    candidates: int,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    with devserver(workdir) as ds:
        progress("signaling: devserver up")
        return asyncio.run(_measure(ds, rounds, candidates, progress))
