"""The analytics API's OpenAPI document is true, as judged by a tool nobody here wrote.

schemathesis (pinned, in its own venv `.venv-schemathesis`: `make test` installs it) reads
`/api/analytics/openapi.json` from the devserver and calls every operation the way a
third-party client would: through the HTTP API emulation (payload v2.0 events, Mangum,
FastAPI in the function's worker processes), with valid and invalid data, with and
without the admin token, checking every answer against the document (`--checks all`).
Bounded: a fixed seed, FUZZ_EXAMPLES/4 examples per operation (`make fuzz` raises it) and
a subprocess timeout.

One check is left out, for a reason of the platform: `unsupported_method` wants 405 for a
method the document does not list, but on AWS such a request never reaches the function:
API Gateway's HTTP API answers an unrouted method with its own 404 `{"message": "Not
Found"}` (the devserver does too). Only an ANY route would give the function the chance,
and an ANY route would also forward CORS preflights to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .clients import admin, invocations
from .conftest import ROOT, RunningDevserver

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

SCHEMATHESIS = ROOT / ".venv-schemathesis" / "bin" / "st"
EXAMPLES = max(5, int(os.environ.get("FUZZ_EXAMPLES", "40")) // 4)
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261201")
RUN_TIMEOUT = 600.0


def test_analytics_api_answers_as_its_openapi_document_says(
    devserver: RunningDevserver, tmp_path: Path
) -> None:
    if not SCHEMATHESIS.exists():
        pytest.fail(f"{SCHEMATHESIS} is missing: `make schemathesis` (`make test` runs it)")
    document = admin(devserver, "GET", "/api/analytics/openapi.json")
    operations = sum(len(item) for item in document["paths"].values())
    before = invocations(devserver, "AnalyticsApiFunction")
    token = devserver.token("schemathesis", admin=True)
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{devserver.http}/api/analytics/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--exclude-checks",
        "unsupported_method",  # see the module docstring
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "1",
        "--request-timeout",
        "30",
        # The response-time check is a wall-clock oracle: on a loaded 2-core machine moto
        # answers in seconds. Correctness is what this test is for; time is bench's job.
        "--max-response-time",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
    ]
    run = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    sys.stdout.write(run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    # Not a vacuous pass: every operation of the document was tested, and the requests
    # went through the function (the devserver counts its invocations).
    assert f"Tested: {operations}\n" in run.stdout, run.stdout[-3000:]
    assert operations >= 9
    assert invocations(devserver, "AnalyticsApiFunction") - before >= operations * 5
