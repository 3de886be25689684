"""`python -m devserver invoke FUNCTION -e EVENT.json` -- SAM's `sam local invoke`, without
Docker: one function of the template runs on one event against the embedded AWS.

As `sam local invoke` does, it gives the function exactly the template's environment
(Globals + Function, `--param` overrides) in its own execution environment (a worker
process of devserver/worker.py: CodeUri + layers on the path, isolated interpreter), and
prints START / the function's logs / END / REPORT to stderr and the result (or the error
payload) as JSON to stdout. The AWS it meets is a fresh moto, provisioned from the template
(empty tables and queues) with the sample data of events/sample-data/ put in through the
functions themselves (alice started a conversation with bob, who accepted it: they are
contacts, so the call events ring); pushes to connections go to moto's management API,
which accepts any connection id. Placeholders in the event are filled in first, so the sample
events in events/ carry no stale credentials: `<dev token:USER>` and
`<dev admin token:USER>` become dev JWTs that the local authorizer accepts.

Exit status: 0 when the function returned, 1 when it raised (or timed out), 2 for a bad
command line (unknown function, unreadable event).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from moto.server import ThreadedMotoServer

from devserver.moto_fidelity import make_dynamodb_writes_atomic
from devserver.provision import provision
from devserver.template import FunctionSpec, Template
from devserver.tokens import mint
from devserver.workers import FunctionPool, InvocationResult, function_environment

__all__ = ["SAMPLE_DATA", "Invocation", "fill_placeholders", "invoke_all", "main"]

# The sample data every invocation meets, (function, event file) in order: what a sample
# event needs that a fresh stack lacks (calls ring only contacts).
SAMPLE_DATA_DIR = Path(__file__).resolve().parents[1] / "events" / "sample-data"
SAMPLE_DATA = [
    ("MessageFunction", "1-alice-starts-a-conversation-with-bob.json"),
    ("MessageFunction", "2-bob-accepts-it.json"),
]

_PLACEHOLDER = re.compile(r"<dev (admin )?token:([A-Za-z0-9_.@-]{1,64})>")


def fill_placeholders(event: Any) -> Any:
    """``<dev token:alice>`` / ``<dev admin token:ops>`` in any string -> a dev JWT."""
    text = json.dumps(event)
    filled = _PLACEHOLDER.sub(lambda m: mint(m.group(2), admin=bool(m.group(1))), text)
    return json.loads(filled)


@dataclass
class Invocation:
    function: str
    event: Any
    result: InvocationResult | None = None


@contextmanager
def _local_aws(template: Template) -> Iterator[str]:
    make_dynamodb_writes_atomic()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        url = f"http://{host}:{port}"
        template.moto_url = url
        provision(template, url)
        yield url
    finally:
        moto.stop()


async def _run(template: Template, moto_url: str, invocations: Sequence[Invocation]) -> None:
    specs = {spec.logical_id: spec for spec in template.functions()}
    await _put_sample_data(specs, moto_url)
    pools: dict[str, FunctionPool] = {}
    try:
        for invocation in invocations:
            if invocation.function not in pools:
                spec = specs[invocation.function]
                pools[invocation.function] = FunctionPool(spec, _environment(spec, moto_url), 1)
                await pools[invocation.function].start()
            invocation.result = await pools[invocation.function].invoke(invocation.event)
    finally:
        # Closing waits for the workers' output, so every log line is out before REPORT.
        await asyncio.gather(*(pool.close() for pool in pools.values()))


def _environment(spec: FunctionSpec, moto_url: str) -> dict[str, str]:
    env = function_environment(spec, moto_url)
    # moto's management API answers on its bare URL only (not under a stage).
    env["WEBSOCKET_ENDPOINT"] = moto_url
    return env


async def _put_sample_data(specs: dict[str, FunctionSpec], moto_url: str) -> None:
    """Runs the sample data's events through their functions, in workers of their own
    that are closed (their output done) before the invocations start: the sample data's
    log lines never mix with an invocation's."""
    pools: dict[str, FunctionPool] = {}
    quiet = [logging.getLogger(f"fn.{function}") for function, _ in SAMPLE_DATA]
    for function_log in quiet:
        function_log.disabled = True
    try:
        for function, name in SAMPLE_DATA:
            if function not in pools:
                spec = specs[function]
                pools[function] = FunctionPool(spec, _environment(spec, moto_url), 1)
                await pools[function].start()
            event = fill_placeholders(json.loads((SAMPLE_DATA_DIR / name).read_text()))
            result = await pools[function].invoke(event)
            reply = json.loads(result.payload["body"]) if result.ok else result.error
            if not (result.ok and reply and reply.get("ok")):
                raise RuntimeError(f"the sample data's {name} failed: {reply}")
    finally:
        await asyncio.gather(*(pool.close() for pool in pools.values()))
        for function_log in quiet:
            function_log.disabled = False


def invoke_all(template: Template, invocations: Sequence[Invocation]) -> None:
    """Runs each (function, event) in order on one fresh local AWS: a function keeps its
    execution environment between its invocations (warm, as on Lambda)."""
    unknown = {i.function for i in invocations} - {s.logical_id for s in template.functions()}
    if unknown:
        raise KeyError(f"not a function of the template: {', '.join(sorted(unknown))}")
    with _local_aws(template) as moto_url:
        asyncio.run(_run(template, moto_url, invocations))


def _report(invocation: Invocation, out: TextIO, err: TextIO) -> int:
    result = invocation.result
    assert result is not None
    request_id = result.request_id
    err.write(f"END RequestId: {request_id}\n")
    err.write(
        f"REPORT RequestId: {request_id}\tDuration: {result.duration_ms:.2f} ms\t"
        f"Function: {invocation.function}\tWorker pid: {result.pid}\n"
    )
    err.flush()
    payload = result.payload if result.ok else result.error
    out.write(json.dumps(payload, indent=2, default=str) + "\n")
    out.flush()
    return 0 if result.ok else 1


def main(argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devserver invoke",
        description="Run one function of the template on an event (sam local invoke, no Docker).",
    )
    p.add_argument("function", help="the function's logical id in template.yaml")
    p.add_argument("-e", "--event", required=True, type=Path, help="event JSON file ('-' = stdin)")
    p.add_argument("--template", type=Path, default=Path("template.yaml"))
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="template parameter"
    )
    args = p.parse_args(argv)
    try:
        raw = sys.stdin.read() if str(args.event) == "-" else args.event.read_text()
        event = fill_placeholders(json.loads(raw))
    except (OSError, ValueError) as exc:
        err.write(f"cannot read the event {args.event}: {exc}\n")
        return 2
    template = Template(args.template, dict(p.split("=", 1) for p in args.param))
    if args.function not in {spec.logical_id for spec in template.functions()}:
        names = ", ".join(sorted(s.logical_id for s in template.functions()))
        err.write(f"{args.function} is not a function of {args.template}; one of: {names}\n")
        return 2
    # The function's own output, line by line and unprefixed, as `sam local invoke` shows it.
    handler = logging.StreamHandler(err)
    handler.setFormatter(_WorkerLineFormatter())
    fn_log = logging.getLogger(f"fn.{args.function}")
    fn_log.addHandler(handler)
    fn_log.setLevel(logging.INFO)
    fn_log.propagate = False
    invocation = Invocation(args.function, event)
    err.write(f"START Function: {args.function} Event: {args.event}\n")
    err.flush()
    invoke_all(template, [invocation])
    return _report(invocation, out, err)


class _WorkerLineFormatter(logging.Formatter):
    """devserver/workers.py logs "%s %s" % ("[Function:pid]", line): keep the line."""

    def format(self, record: logging.LogRecord) -> str:
        args = record.args if isinstance(record.args, tuple) else ()
        return str(args[1]) if len(args) == 2 else record.getMessage()
