"""Figure 3 - fan-out: one frame to N connections through switchboard/gateway.py's real
``ManagementApi.fan_out`` (bounded parallel posts, the concurrency the deployed settings
give) against a management API that answers each post after an injected latency,
compared with posting the same frame sequentially with the same client."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from switchboard.config import DeliverySettings
from switchboard.gateway import ManagementApi

from bench import ROOT

FRAME = {"type": "message:new", "data": {"conversationId": "c-bench", "seq": 1, "body": "hi"}}


@contextlib.contextmanager
def latency_server(delay_ms: float) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_server", "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip():
            raise RuntimeError("latency server did not start")
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def posts_received(url: str) -> int:
    with urllib.request.urlopen(f"{url}/__posts", timeout=10) as response:
        return int(json.loads(response.read())["count"])


def reset_posts(url: str) -> None:
    request = urllib.request.Request(f"{url}/__posts", method="DELETE")
    with urllib.request.urlopen(request, timeout=10):
        pass


def default_concurrency() -> int:
    value = DeliverySettings.model_fields["FANOUT_CONCURRENCY"].default
    return int(value)


def measure(
    sizes: list[int],
    sequential_posts: int,
    delay_ms: float = 20.0,
    concurrency: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """``sequential_posts``: how many posts the sequential baseline makes (its time for N
    is N x its measured time per post, as sequential posting is linear by construction)."""
    concurrency = concurrency or default_concurrency()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with latency_server(delay_ms) as url:
        api = ManagementApi(url, max_concurrency=concurrency)
        api.fan_out([f"warm-{i}" for i in range(concurrency)], FRAME)  # open the pool
        reset_posts(url)

        start = time.perf_counter()
        for i in range(sequential_posts):
            api.post(f"seq-{i}", FRAME)
        per_post_ms = (time.perf_counter() - start) * 1000 / sequential_posts
        progress(f"fan-out: sequential {sequential_posts} posts, {per_post_ms:.1f} ms each")

        parallel: dict[int, float] = {}
        delivered: dict[int, int] = {}
        for size in sizes:
            reset_posts(url)
            start = time.perf_counter()
            result = api.fan_out([f"c{size}-{i}" for i in range(size)], FRAME)
            parallel[size] = (time.perf_counter() - start) * 1000
            delivered[size] = len(result.delivered)
            if posts_received(url) != size or result.failed:
                raise RuntimeError(f"fan-out to {size}: {result.failed or 'posts lost'}")
            progress(f"fan-out: {size} connections in {parallel[size]:.0f} ms")
    curve = [
        {
            "connections": size,
            "parallel_ms": round(parallel[size], 1),
            "sequential_ms": round(per_post_ms * size, 1),
            "speedup": round(per_post_ms * size / parallel[size], 2),
            "delivered": delivered[size],
        }
        for size in sizes
    ]
    largest = max(sizes)
    return {
        "delay_ms": delay_ms,
        "concurrency": concurrency,
        "sequential_posts_measured": sequential_posts,
        "sequential_ms_per_post": round(per_post_ms, 2),
        "curve": curve,
        f"fanout_{largest}_speedup": curve[-1]["speedup"],
        "ideal_speedup": concurrency,
    }
