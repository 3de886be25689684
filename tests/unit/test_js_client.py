"""The JavaScript client's unit tests (web/tests/*.test.mjs: reconnect, resume,
de-duplication, acks, keep-alive, typing) run with `node --test`, so `make test` runs them.
Node is required (.ci/run installs it when missing): its absence fails, never skips."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = sorted((ROOT / "web" / "tests").glob("*.test.mjs"))


def test_there_are_js_tests() -> None:
    assert TESTS, "web/tests/*.test.mjs not found"


@pytest.mark.parametrize("path", TESTS, ids=[p.name for p in TESTS])
def test_js_client(path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: `apt-get install -y nodejs` (.ci/run installs it)")
    result = subprocess.run(
        [node, "--test", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
