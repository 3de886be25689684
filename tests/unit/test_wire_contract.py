"""The wire contract: every file generated from the models is current (`make generate`),
and the AsyncAPI document is valid for the AsyncAPI CLI (pinned in tools/npm/)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from switchboard.wire import all_actions, all_pushes, all_replies, codegen

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI_CLI = ROOT / ".npm-tools" / "node_modules" / ".bin" / "asyncapi"


def test_generated_files_are_current() -> None:
    stale = [str(p.relative_to(ROOT)) for p in codegen.stale(ROOT)]
    assert stale == [], f"stale: {stale}; run `make generate`"


def test_a_changed_model_makes_its_generated_files_stale(tmp_path: Path) -> None:
    # Given a copy of the generated files with one of them edited by hand
    for path in codegen.outputs(ROOT):
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    edited = tmp_path / "web/protocol.js"
    edited.write_text(edited.read_text().replace("MAX_FRAME_BYTES: 32768", "MAX_FRAME_BYTES: 1"))
    # Then the drift check names exactly that file, and writing fixes it
    assert codegen.stale(tmp_path) == [edited]
    assert codegen.write(tmp_path) == [edited]
    assert codegen.stale(tmp_path) == []


def test_asyncapi_has_every_action_and_push() -> None:
    document = json.loads((ROOT / "docs/asyncapi.json").read_text())
    messages = document["components"]["messages"]
    summaries = {op["summary"] for op in document["operations"].values()}
    assert set(all_actions()) == set(all_replies()) <= summaries
    assert {f"push: {t}" for t in all_pushes()} <= summaries
    assert len(messages) == 2 * len(all_replies()) + len(all_pushes())
    assert document["components"]["securitySchemes"]["token"]["in"] == "query"


# The CLI (node) starts in ~30 s here, far longer on a machine under heavy load.
@pytest.mark.timeout(420)
def test_asyncapi_document_is_valid() -> None:
    if not ASYNCAPI_CLI.exists():
        pytest.fail("the AsyncAPI CLI is not installed: `make asyncapi-cli` (make test does it)")
    result = subprocess.run(
        [str(ASYNCAPI_CLI), "validate", str(ROOT / "docs/asyncapi.json")],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        # CI=true and the committed settings file keep the CLI's usage analytics off: the
        # tests send nothing beyond this machine.
        env={
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "HOME": str(ROOT / ".npm-tools"),
            "CI": "true",
            "ASYNCAPI_METRICS_CONFIG_PATH": str(ROOT / "tools/asyncapi/analytics-off.json"),
            "SUPPRESS_NO_CONFIG_WARNING": "1",
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "is valid" in output, output[-4000:]
