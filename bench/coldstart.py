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
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import median
from devserver.template import FunctionSpec, Template
from devserver.workers import function_environment

BASELINE = "-"
# Never reached: a handler that calls AWS while it initialises fails loudly here.
UNREACHABLE_AWS = "http://127.0.0.1:9"

_CHILD = r"""
import importlib, sys, time
sys.path[:0] = sys.argv[1].split("\x1f")
start, cpu = time.perf_counter(), time.process_time()
if sys.argv[2] == "-":
    import boto3
    boto3.client("dynamodb")
else:
    importlib.import_module(sys.argv[2])
print((time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000)
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


def load_template(root: Path) -> Template:
    template = Template(root / "template.yaml")
    template.moto_url = UNREACHABLE_AWS
    return template
