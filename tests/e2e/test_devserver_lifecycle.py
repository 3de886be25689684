"""The devserver's lifetime is bounded by whoever started it: with ``--exit-with-parent``
(what the tests and benchmarks pass), a parent killed with SIGKILL - which can clean up
nothing - still leaves no devserver and no Lambda worker running. Bounded waits only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.e2e

READY_SECONDS = 120.0
EXIT_SECONDS = 60.0

# The parent: starts the devserver as tests/e2e/conftest.py does, says its pid, then
# waits to be killed.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-m", "devserver", "--ws-port", "0", "--http-port", "0",
     "--workers", "1", "--prewarm", "--turn", "off", "--exit-with-parent",
     "--ready-file", sys.argv[1]],
    stdout=open(sys.argv[2], "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
)
print(child.pid, flush=True)
time.sleep(3600)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit status may be reaped late, or never)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in children.read_text().split()] if children.exists() else []


def test_a_killed_parent_takes_the_devserver_and_its_workers_down(tmp_path: Path) -> None:
    ready, log = tmp_path / "ready.json", tmp_path / "devserver.log"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(ready), str(log)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    devserver = 0
    try:
        assert parent.stdout is not None
        devserver = int(parent.stdout.readline())
        deadline = time.monotonic() + READY_SECONDS
        while not ready.exists():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert _running(devserver), log.read_text()[-3000:]
            time.sleep(0.2)
        assert json.loads(ready.read_text())["ws"].startswith("ws://127.0.0.1:")
        workers = _workers_of(devserver)
        assert workers, "the devserver runs its functions in worker processes"
        # When the parent dies without a chance to clean up
        parent.kill()
        parent.wait(timeout=10)
        # Then the devserver notices, shuts down, and takes its workers with it
        deadline = time.monotonic() + EXIT_SECONDS
        while _running(devserver) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(devserver), log.read_text()[-3000:]
        assert not [w for w in workers if _running(w)], workers
        assert "the process that started the devserver exited" in log.read_text()
    finally:
        if devserver and _running(devserver):
            os.kill(devserver, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
