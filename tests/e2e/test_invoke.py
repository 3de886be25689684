"""`python -m devserver invoke` (SAM's `sam local invoke` without Docker): every sample
event in events/ runs against its function with the template's environment on a fresh
embedded AWS and gets the answer that event is for; the command prints SAM's
START/END/REPORT around the function's own logs and the result as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TIMEOUT = 300

# Every file in events/ -> the function it is for and what it must get back:
# "reply" (a WebSocket reply frame, ok), "refused:<code>" (a reply with that error code),
# "http" (an HTTP API 200), "batch" (no failed records), "allow" (the authorizer's Allow),
# "lifecycle" ($connect/$disconnect 200).
EXPECTED: dict[str, tuple[str, str]] = {
    "analytics-overview.json": ("AnalyticsApiFunction", "http"),
    "analytics-stream.json": ("AggregatorFunction", "batch"),
    # (alice and bob are contacts in the sample data every invocation meets, so alice's
    # calls to bob ring and she gets relay credentials for them)
    "call-ice-servers.json": ("SignalingFunction", "reply"),
    "call-initiate.json": ("SignalingFunction", "reply"),
    "call-ring-timeout.json": ("RingTimeoutFunction", "batch"),
    "connect-authorizer.json": ("AuthorizerFunction", "allow"),
    "connect.json": ("ConnectionFunction", "lifecycle"),
    "default-unknown-action.json": ("ConnectionFunction", "refused:unknown_action"),
    "disconnect.json": ("ConnectionFunction", "lifecycle"),
    "message-search.json": ("SearchFunction", "reply"),
    "ping.json": ("ConnectionFunction", "reply"),
    "search-index-stream.json": ("SearchIndexerFunction", "batch"),
    "upload-part-done.json": ("UploadFunction", "refused:not_found"),
    "upload-s3-notification.json": ("UploadProcessorFunction", "batch"),
    "upload-start.json": ("UploadFunction", "reply"),
}

_RUN_ALL = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from devserver.invoke import Invocation, fill_placeholders, invoke_all
    from devserver.template import Template
    pairs = json.loads(sys.argv[1])
    runs = [Invocation(fn, fill_placeholders(json.loads(Path(f).read_text()))) for f, fn in pairs]
    invoke_all(Template(Path("template.yaml")), runs)
    for run in runs:
        print(json.dumps({"ok": run.result.ok, "payload": run.result.payload,
                          "error": run.result.error}))
    """
)


def check(expectation: str, payload: Any) -> None:
    if expectation == "batch":
        assert payload == {"batchItemFailures": []}
    elif expectation == "allow":
        assert payload["principalId"] == "alice"
        assert payload["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    elif expectation == "lifecycle":
        assert payload["statusCode"] == 200
    elif expectation == "http":
        assert payload["statusCode"] == 200, payload
        assert "connections" in json.loads(payload["body"])
    else:
        assert payload["statusCode"] == 200
        reply = json.loads(payload["body"])
        assert reply["type"] == "reply" and reply["id"]
        if expectation == "reply":
            assert reply["ok"] is True, reply
        else:
            assert reply["ok"] is False and reply["error"]["code"] == expectation.split(":")[1]


def test_every_sample_event_runs_against_its_function() -> None:
    # Given every event file, each named with its function (a new file must be added here)
    files = sorted(p.name for p in EVENTS.glob("*.json"))
    assert files == sorted(EXPECTED)
    pairs = [(str(EVENTS / name), EXPECTED[name][0]) for name in files]
    # When they are invoked, in order, on one fresh local AWS
    done = subprocess.run(
        [sys.executable, "-c", _RUN_ALL, json.dumps(pairs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    # Then each function returned (no exception) the answer its event is for
    assert len(results) == len(files)
    for name, result in zip(files, results, strict=True):
        assert result["ok"], (name, result["error"])
        check(EXPECTED[name][1], result["payload"])


def test_the_command_prints_logs_report_and_result_like_sam() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devserver",
            "invoke",
            "ConnectionFunction",
            "-e",
            "events/ping.json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # stdout: the function's result, as JSON
    reply = json.loads(json.loads(done.stdout)["body"])
    assert reply["ok"] and reply["data"]["pong"] is True
    # stderr: START, the function's own structured log lines, END, REPORT (in that order)
    lines = done.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("START "))
    handled = next(i for i, line in enumerate(lines) if '"message":"handled"' in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("END RequestId: "))
    report = next(i for i, line in enumerate(lines) if line.startswith("REPORT RequestId: "))
    assert start < handled < end < report
    assert json.loads(lines[handled])["function_name"] == "ConnectionFunction"
    request_id = lines[end].removeprefix("END RequestId: ")
    assert json.loads(lines[handled])["function_request_id"] == request_id


def test_unknown_function_or_unreadable_event_is_a_usage_error() -> None:
    for args in (
        ["NoSuchFunction", "-e", "events/ping.json"],
        ["ConnectionFunction", "-e", "nope.json"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "devserver", "invoke", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 2 and done.stdout == "", args
        assert "not a function" in done.stderr or "cannot read the event" in done.stderr
