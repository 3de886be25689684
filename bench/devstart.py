"""Figure 10 - what starting the devserver costs: the default start (a function's workers
start when an invocation needs one, as Lambda's do) against ``--prewarm`` (every pool
started full, 2 workers x every function of template.yaml, before the ready file).

Each round starts one of each, in alternating order, and reads until the ready file
appears: the wall time, and the CPU time of the devserver and of every process it
started (its workers and moto's, from /proc), taken when it is ready. The ratio is of
the medians, in one run. The default start's workers come later, one cold start
(~0.7 s of CPU) per function and concurrent invocation that needs one.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.e2e import cpu_seconds
from bench.stats import median
from tests.e2e.conftest import _start

ROUNDS = 3


def _tree_cpu_seconds(root: int) -> tuple[float, int]:
    """CPU seconds (user + system) of ``root`` and the processes it started (its threads'
    ``children`` lists), and how many processes that is."""
    children: set[int] = set()
    for task in Path(f"/proc/{root}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended while listed
            children.update(int(pid) for pid in (task / "children").read_text().split())
    pids = [root, *sorted(children)]
    return sum(cpu_seconds(f"/proc/{pid}/stat") for pid in pids), len(pids)


def _start_once(prewarm: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-devstart-") as workdir:
        started = time.perf_counter()
        server = _start(
            Path(workdir), ["--log-level", "WARNING", *(["--prewarm"] if prewarm else [])]
        )
        try:
            wall = time.perf_counter() - started
            cpu, processes = _tree_cpu_seconds(server.process.pid)
        finally:
            server.stop()
    return {"ready_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "processes": processes}


def measure(
    rounds: int = ROUNDS, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {"on_demand": [], "prewarm": []}
    for index in range(rounds):
        order = ("on_demand", "prewarm") if index % 2 == 0 else ("prewarm", "on_demand")
        for kind in order:
            sample = _start_once(prewarm=kind == "prewarm")
            samples[kind].append(sample)
            progress(
                f"devserver start ({kind}): ready in {sample['ready_seconds']:.1f} s "
                f"on {sample['cpu_seconds']:.1f} s of CPU, {sample['processes']:.0f} processes"
            )
    figures = {
        kind: {
            "ready_seconds": median([s["ready_seconds"] for s in runs]),
            "cpu_seconds": median([s["cpu_seconds"] for s in runs]),
            "processes": median([s["processes"] for s in runs]),
            "samples": runs,
        }
        for kind, runs in samples.items()
    }
    on_demand, prewarm = figures["on_demand"], figures["prewarm"]
    return {
        **figures,
        "rounds": rounds,
        "devserver_start_seconds": on_demand["ready_seconds"],
        "devserver_start_cpu_seconds": on_demand["cpu_seconds"],
        "devserver_start_cpu_ratio": round(prewarm["cpu_seconds"] / on_demand["cpu_seconds"], 2),
    }
