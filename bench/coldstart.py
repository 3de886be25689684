"""Figure 1 - cold start per function.

A fresh Python process (isolated, ``-I``, like devserver/worker.py: only the function's
CodeUri and its layers on sys.path, exactly the template's environment) imports and
initialises the handler module; the baseline is a fresh process with the same path and
environment importing boto3 alone and creating one client. Both are timed inside the
child (interpreter start-up is the same for both and left out), in interleaved rounds
in random order, each function's run paired with the baseline runs just before and after
it. The ratio is taken on the CPU time the child spends (``process_time``): an import is
CPU work, and CPU time is what a machine shared with other processes inflates least,
where wall time can triple under load. Each function is reported as the median over the
rounds of its paired ratio, so the machine's speed and its changing load cancel out; the
wall-clock ratios are kept in the results too.

``first_request`` is the second figure: the same fresh process then handles its
function's most common request against the moto stack, and the CPU of import + that
request is divided by a baseline that imports boto3, creates one client and makes one
call. What an import defers (a pydantic model built on first use, a client created on
first call) is paid there, so a saving that only moves work to the first request shows.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.stats import median
from devserver.template import FunctionSpec, Template
from devserver.workers import function_environment

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

BASELINE = "-"
# The least a function of this stack imports: boto3 (its clients are created on first
# use, as Switchboard's are: switchboard/aws.py), a pydantic model validated once (its
# settings) and a Powertools Logger. Measured in the same rounds as the functions and
# reported beside them (no goal): what a function that uses them all cannot go below.
FLOOR = "=floor"
FLOOR_NAME = "floor: `import boto3` (no client) + a pydantic model + a Powertools Logger"
# Never reached: a handler that calls AWS while it initialises fails loudly here.
UNREACHABLE_AWS = "http://127.0.0.1:9"

_CHILD = r"""
import importlib, sys, time
sys.path[:0] = sys.argv[1].split("\x1f")
start, cpu = time.perf_counter(), time.process_time()
if sys.argv[2] == "-":
    import boto3
    boto3.client("dynamodb")
elif sys.argv[2] == "=floor":
    import boto3
    from aws_lambda_powertools import Logger
    from pydantic import BaseModel
    class Settings(BaseModel):
        TABLE: str
    Settings(TABLE="t"), Logger(service="floor")
else:
    importlib.import_module(sys.argv[2])
print((time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000)
"""


# Import, then one request (the event on stdin); "-" imports boto3, creates a DynamoDB
# client and makes one call (GetItem of an absent user) instead. The response is checked
# here: a request that failed would be a cheaper, meaningless sample.
_FIRST_REQUEST_CHILD = r"""
import importlib, json, sys, time
sys.path[:0] = sys.argv[1].split("\x1f")
event = json.loads(sys.stdin.read())
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "bench", 512, "bench-request"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
start, cpu = time.perf_counter(), time.process_time()
if sys.argv[2] == "-":
    import boto3
    client = boto3.client("dynamodb")
    imported, imported_cpu = time.perf_counter(), time.process_time()
    client.get_item(TableName=event["table"], Key={"userId": {"S": "bench-absent"}})
    ok = True
else:
    module = importlib.import_module(sys.argv[2])
    imported, imported_cpu = time.perf_counter(), time.process_time()
    response = module.lambda_handler(event, Context())
    if "policyDocument" in response:
        ok = response["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    elif "body" in response:
        ok = json.loads(response["body"]).get("ok") is True
    else:
        ok = response.get("statusCode") == 200
    if not ok:
        raise SystemExit(f"the first request failed: {response}")
end, end_cpu = time.perf_counter(), time.process_time()
print("@@first-request", *((x * 1000) for x in (
    imported - start, imported_cpu - cpu, end - start, end_cpu - cpu)))
"""


@dataclass(frozen=True)
class Subject:
    name: str  # a function's logical id, or "baseline"
    paths: list[str]
    module: str
    env: dict[str, str]


def websocket_functions(template: Template) -> set[str]:
    """Logical ids of the functions behind the WebSocket API (integrations, authorizer)."""
    found: set[str] = set()
    for kind, uri_key in (
        ("AWS::ApiGatewayV2::Integration", "IntegrationUri"),
        ("AWS::ApiGatewayV2::Authorizer", "AuthorizerUri"),
    ):
        for _, props in template.of_type(kind):
            logical_id = template.function_by_arn(str(template.resolve(props.get(uri_key, ""))))
            if logical_id is not None:
                found.add(logical_id)
    return found


def subjects(template: Template) -> list[Subject]:
    return [
        _subject(spec, spec.logical_id, spec.handler.rsplit(".", 1)[0])
        for spec in template.functions()
    ]


def _subject(spec: FunctionSpec, name: str, module: str) -> Subject:
    paths = [str(spec.code_uri), *(str(p) for p in spec.layer_paths)]
    return Subject(name, paths, module, function_environment(spec, UNREACHABLE_AWS))


def time_import(subject: Subject, module: str | None = None) -> tuple[float, float]:
    """(wall, CPU) milliseconds a fresh process spends importing ``module`` (default: the
    handler)."""
    completed = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        [sys.executable, "-I", "-c", _CHILD, "\x1f".join(subject.paths), module or subject.module],
        env=subject.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{subject.name}: cold start failed:\n{completed.stderr[-3000:]}")
    wall, cpu = completed.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def measure(
    template: Template,
    rounds: int,
    progress: Callable[[str], None] = lambda _: None,
    seed: int = 1,
    websocket_only: bool = False,
) -> dict[str, Any]:
    """Each round runs baseline, function, baseline, function, ..., baseline (functions in
    random order), and pairs every function's run with the mean of the baselines just
    before and after it, so load that changes during the run is in both sides of a ratio."""
    websocket = websocket_functions(template)
    functions = [s for s in subjects(template) if s.name in websocket or not websocket_only]
    functions.append(replace(functions[0], name=FLOOR_NAME, module=FLOOR))
    cpu: dict[str, list[float]] = {s.name: [] for s in functions}
    wall: dict[str, list[float]] = {s.name: [] for s in functions}
    paired_cpu: dict[str, list[float]] = {s.name: [] for s in functions}
    paired_wall: dict[str, list[float]] = {s.name: [] for s in functions}
    shuffle = random.Random(seed).shuffle
    for round_index in range(rounds):
        order = list(functions)
        shuffle(order)
        # The baseline runs with a function's path and environment (same interpreter, same
        # site-packages); it imports boto3 only.
        before = time_import(functions[0], BASELINE)
        for subject in order:
            handler = time_import(subject)
            after = time_import(functions[0], BASELINE)
            wall[subject.name].append(handler[0])
            cpu[subject.name].append(handler[1])
            paired_wall[subject.name].append((before[0] + after[0]) / 2)
            paired_cpu[subject.name].append((before[1] + after[1]) / 2)
            before = after
        progress(f"cold start: round {round_index + 1}/{rounds}")
    result = summarise(cpu, paired_cpu, websocket)
    result["wall_clock"] = summarise(wall, paired_wall, websocket)
    result["floor"] = result["functions"].pop(FLOOR_NAME)
    result["wall_clock"]["floor"] = result["wall_clock"]["functions"].pop(FLOOR_NAME)
    result["measure"] = (
        "CPU time (process_time) of the import; ratio = median over rounds of the run "
        "divided by the mean of the baseline runs around it"
    )
    return result


def summarise(
    handler_ms: dict[str, list[float]],
    baseline_ms: dict[str, list[float]],
    websocket: set[str],
) -> dict[str, Any]:
    """``baseline_ms[name][i]`` is the baseline paired with ``handler_ms[name][i]``."""
    per_function: dict[str, dict[str, Any]] = {
        name: {
            "median_ms": round(median(samples), 1),
            "fastest_ms": round(min(samples), 1),
            "ratio": round(
                median([h / b for h, b in zip(samples, baseline_ms[name], strict=True)]), 3
            ),
            "websocket": name in websocket,
            "samples_ms": [round(s, 1) for s in samples],
            "baseline_ms": [round(b, 1) for b in baseline_ms[name]],
        }
        for name, samples in sorted(handler_ms.items())
    }
    ws = {n: f for n, f in per_function.items() if f["websocket"]}
    worst = max(ws or per_function, key=lambda n: per_function[n]["ratio"])
    every_baseline = [b for samples in baseline_ms.values() for b in samples]
    return {
        "baseline_median_ms": round(median(every_baseline), 1),
        "functions": per_function,
        "worst_websocket_function": worst,
        "coldstart_ratio": per_function[worst]["ratio"],
    }


def import_profile(template: Template, logical_id: str, top: int = 12) -> list[dict[str, Any]]:
    """The top-level packages a function's cold start spends its import time in
    (``-X importtime`` self times summed per package, and their share of the total: the
    tracing inflates the times, the shares hold)."""
    spec = next(s for s in template.functions() if s.logical_id == logical_id)
    subject = _subject(spec, logical_id, spec.handler.rsplit(".", 1)[0])
    code = f"import sys; sys.path[:0] = {json.dumps(subject.paths)}; import {subject.module}"
    completed = subprocess.run(
        [sys.executable, "-I", "-X", "importtime", "-c", code],
        env=subject.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    per_package: dict[str, int] = {}
    for line in completed.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            package = fields[2].strip().split(".")[0]
            per_package[package] = per_package.get(package, 0) + int(fields[0])
    total = sum(per_package.values()) or 1
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])[:top]
    return [
        {"package": name, "self_ms": round(us / 1000, 1), "share": round(us / total, 3)}
        for name, us in ranked
    ]


def time_first_request(
    subject: Subject, event: dict[str, Any], module: str | None = None
) -> dict[str, float]:
    """CPU milliseconds of import (``import_ms``) and of import + the first request
    (``total_ms``) in a fresh process."""
    completed = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        [
            sys.executable,
            "-I",
            "-c",
            _FIRST_REQUEST_CHILD,
            "\x1f".join(subject.paths),
            module or subject.module,
        ],
        input=json.dumps(event),
        env=subject.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{subject.name}: import + first request failed:\n{completed.stderr[-3000:]}"
        )
    line = next(x for x in completed.stdout.splitlines() if x.startswith("@@first-request"))
    fields = [float(x) for x in line.split()[1:]]
    return {"import_ms": fields[1], "total_ms": fields[3]}


class FirstRequests:
    """Each function's most common request, made fresh for every round (a new send, a new
    upload, a new user's connect) by the in-process handlers that set up its state."""

    def __init__(self, stack: Stack, progress: Callable[[str], None]) -> None:
        from tests.integration.test_messaging import Client

        self.stack, self.client, self.progress = stack, Client, progress
        # The set-up's own handlers run in this process, quietly; the measured ones log
        # as the template says.
        self.app = stack.handler("MessageFunction", POWERTOOLS_LOG_LEVEL="WARNING")
        self.connect = stack.handler("ConnectionFunction", POWERTOOLS_LOG_LEVEL="WARNING")

    def events(self) -> dict[str, dict[str, Any]]:
        from switchboard.auth import mint_token

        from bench.calls import SDP_OFFER, authorizer_event
        from devserver import DEV_JWT_SECRET
        from tests.support.events import frame, ws_event

        tag = uuid.uuid4().hex[:8]
        alice = self.client(self.stack, self.app, self.connect, f"fr-alice-{tag}")
        bob = self.client(self.stack, self.app, self.connect, f"fr-bob-{tag}")
        conversation = alice.ok("conversation:create", {"members": [bob.user_id]})
        cid = conversation["conversationId"]
        bob.ok("conversation:accept", {"conversationId": cid})
        alice.ok("message:send", {"conversationId": cid, "clientMessageId": "w", "body": "hello"})

        def request(action: str, data: dict[str, Any]) -> dict[str, Any]:
            body = frame(action, data)
            return ws_event(
                action, body=body, connection_id=alice.connection_id, user_id=alice.user_id
            )

        return {
            "AuthorizerFunction": authorizer_event(mint_token(DEV_JWT_SECRET, f"fr-carol-{tag}")),
            "ConnectionFunction": ws_event(
                "$connect", connection_id=f"fr-conn-{tag}", user_id=f"fr-carol-{tag}"
            ),
            "MessageFunction": request(
                "message:send", {"conversationId": cid, "clientMessageId": "m1", "body": "hi"}
            ),
            "UploadFunction": request(
                "upload:start",
                {"fileName": "photo.png", "contentType": "image/png", "size": 200_000},
            ),
            "SignalingFunction": request(
                "call:initiate", {"calleeId": bob.user_id, "media": "audio", "offer": SDP_OFFER}
            ),
            "SearchFunction": request("message:search", {"query": "hello"}),
        }


def measure_first_request(
    stack: Stack, rounds: int, progress: Callable[[str], None] = lambda _: None, seed: int = 1
) -> dict[str, Any]:
    """Import + first request of each WebSocket function, in rounds like ``measure``, each
    paired with the baseline runs (boto3 + one client + one call) around it."""
    websocket = websocket_functions(stack.template)
    functions = [
        replace(s, env={**s.env, **_stack_env(stack, s.name)})
        for s in subjects(stack.template)
        if s.name in websocket
    ]
    requests = FirstRequests(stack, progress)
    baseline_event = {"table": stack.table("UsersTable")}
    samples: dict[str, list[dict[str, float]]] = {s.name: [] for s in functions}
    paired: dict[str, list[float]] = {s.name: [] for s in functions}
    shuffle = random.Random(seed).shuffle
    for round_index in range(rounds):
        events = requests.events()
        order = list(functions)
        shuffle(order)
        before = time_first_request(functions[0], baseline_event, BASELINE)["total_ms"]
        for subject in order:
            samples[subject.name].append(time_first_request(subject, events[subject.name]))
            after = time_first_request(functions[0], baseline_event, BASELINE)["total_ms"]
            paired[subject.name].append((before + after) / 2)
            before = after
        progress(f"cold start + first request: round {round_index + 1}/{rounds}")
    per_function = {
        name: {
            "import_ms": round(median([x["import_ms"] for x in runs]), 1),
            "first_request_ms": round(median([x["total_ms"] - x["import_ms"] for x in runs]), 1),
            "total_ms": round(median([x["total_ms"] for x in runs]), 1),
            "ratio": round(
                median([x["total_ms"] / b for x, b in zip(runs, paired[name], strict=True)]), 3
            ),
        }
        for name, runs in sorted(samples.items())
    }
    worst = max(per_function, key=lambda n: per_function[n]["ratio"])
    return {
        "measure": (
            "CPU time of import + the function's most common request against moto, divided "
            "by the mean of the baseline runs around it (import boto3 + one client + one "
            "GetItem); median over rounds"
        ),
        "requests": {
            "AuthorizerFunction": "$connect authorization (valid token)",
            "ConnectionFunction": "$connect",
            "MessageFunction": "message:send (1:1, recipient online)",
            "UploadFunction": "upload:start",
            "SignalingFunction": "call:initiate",
            "SearchFunction": "message:search",
        },
        "baseline_median_ms": round(median([b for v in paired.values() for b in v]), 1),
        "functions": per_function,
        "worst_websocket_function": worst,
        "ratio": per_function[worst]["ratio"],
    }


def _stack_env(stack: Stack, logical_id: str) -> dict[str, str]:
    spec = stack.functions[logical_id]
    return {**function_environment(spec, stack.moto_url), **stack.env(logical_id)}


def load_template(root: Path) -> Template:
    template = Template(root / "template.yaml")
    template.moto_url = UNREACHABLE_AWS
    return template
