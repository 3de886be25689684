"""The local "Lambda service": a pool of worker processes per function.

Each worker is one execution environment (devserver/worker.py): its own OS process, the
exact environment the template gives the function, one invocation at a time. Functions
share nothing but the emulated AWS services, so several workers per function show the
code holds when Lambda scales out. A worker that crashes or times out is killed and
replaced; the invocation is reported as an error, as Lambda does.

As on Lambda, an environment starts when an invocation needs one (no idle worker and
fewer than the pool's size): a function nobody calls costs nothing, and starting the
devserver does not pay ~0.7 s of CPU for each of 2 x 15 cold imports at once (that
burst starved everything else on a 2-core machine for ~20 s). ``prewarm`` starts every
pool full instead, for measurements that must not include a cold start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devserver import REGION
from devserver.aws_faults import app_id
from devserver.template import FunctionSpec

__all__ = ["FunctionPool", "InvocationResult", "WorkerPools", "function_environment"]

log = logging.getLogger("devserver.workers")

_HEADER = struct.Struct("!I")
_WORKER_SCRIPT = Path(__file__).with_name("worker.py")
# A cold start here imports boto3, Powertools, pydantic...: generous, but bounded.
INIT_TIMEOUT_SECONDS = 60.0


def moto_client_environment(moto_url: str) -> dict[str, str]:
    """What points boto3 (in a worker or a test process) at the embedded moto server."""
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        # botocore >= 1.37 may build account-based endpoints; moto's streams 404 on them.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def function_environment(spec: FunctionSpec, moto_url: str) -> dict[str, str]:
    """Exactly the template's environment (Globals + Function) plus what Lambda sets."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(spec.environment)
    env.update(moto_client_environment(moto_url))
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
            "_HANDLER": spec.handler,
            # Marks the functions' AWS calls for fault injection (devserver/aws_faults.py).
            "AWS_SDK_UA_APP_ID": app_id(spec.logical_id),
        }
    )
    return env


@dataclass
class InvocationResult:
    ok: bool
    payload: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    pid: int = 0
    request_id: str = ""

    @property
    def error_message(self) -> str:
        if self.error is None:
            return ""
        return f"{self.error.get('errorType')}: {self.error.get('errorMessage')}"


@dataclass
class _Worker:
    spec: FunctionSpec
    env: dict[str, str]
    index: int
    process: asyncio.subprocess.Process | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    pid: int = 0
    invocations: int = 0
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    log_stream: str = ""
    # Sees every line the function writes (CloudWatch Logs' EMF extraction, devserver/emf.py).
    on_output: Callable[[str], None] | None = None

    async def start(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        paths = [str(self.spec.code_uri), *(str(p) for p in self.spec.layer_paths)]
        args = [str(_WORKER_SCRIPT), "--fd", str(child_sock.fileno())]
        args += ["--handler", self.spec.handler]
        for path in paths:
            args += ["--path", path]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",  # isolated: the handler gets no PYTHONPATH / cwd on sys.path
            "-u",  # unbuffered, so logs reach the console as they are written
            *args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(child_sock.fileno(),),
            # Own session: Ctrl-C in the terminal reaches the devserver only, which then
            # shuts workers down in order (after $disconnect ran on them).
            start_new_session=True,
        )
        child_sock.close()
        self.pid = self.process.pid
        self.log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        for stream in (self.process.stdout, self.process.stderr):
            assert stream is not None
            self.pumps.append(asyncio.create_task(self._pump(stream)))
        self.reader, self.writer = await asyncio.open_unix_connection(sock=parent_sock)
        ready = await asyncio.wait_for(self._recv(), INIT_TIMEOUT_SECONDS)
        if ready.get("initError"):
            err = ready["initError"]
            log.error(
                "%s[%d] init failed: %s: %s",
                self.spec.logical_id,
                self.pid,
                err.get("errorType"),
                err.get("errorMessage"),
            )
        else:
            log.debug("%s[%d] ready in %s ms", self.spec.logical_id, self.pid, ready.get("initMs"))

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        prefix = f"[{self.spec.logical_id}:{self.pid}]"
        out = logging.getLogger(f"fn.{self.spec.logical_id}")
        while True:
            line = await stream.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            out.info("%s %s", prefix, text)
            if self.on_output is not None:
                self.on_output(text)

    async def _recv(self) -> dict[str, Any]:
        assert self.reader is not None
        header = await self.reader.readexactly(_HEADER.size)
        body = await self.reader.readexactly(_HEADER.unpack(header)[0])
        message: dict[str, Any] = json.loads(body)
        return message

    async def invoke(self, event: Any) -> InvocationResult:
        assert self.writer is not None
        self.invocations += 1
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        request = {
            "type": "invoke",
            "requestId": request_id,
            "event": event,
            "deadlineMs": int((time.time() + self.spec.timeout) * 1000),
            "functionName": self.spec.name,
            "arn": self.spec.arn,
            "memory": self.spec.memory_size,
            "logGroup": f"/aws/lambda/{self.spec.name}",
            "logStream": self.log_stream,
        }
        data = json.dumps(request, separators=(",", ":")).encode()
        self.writer.write(_HEADER.pack(len(data)) + data)
        await self.writer.drain()
        response = await asyncio.wait_for(self._recv(), self.spec.timeout)
        duration = (time.monotonic() - started) * 1000
        if response.get("ok"):
            return InvocationResult(
                True, response.get("result"), None, duration, self.pid, request_id
            )
        return InvocationResult(False, None, response.get("error"), duration, self.pid, request_id)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, grace: float = 2.0) -> None:
        if self.writer is not None:
            self.writer.close()  # EOF on the IPC socket: the worker exits by itself
        if self.process is not None and self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        for pump in self.pumps:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(pump, 1.0)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        if self.writer is not None:
            self.writer.close()


@dataclass(frozen=True)
class _StartFailed:
    """What a waiting invocation gets instead of a worker whose process died (or timed
    out) before it was ready: Lambda's answer when an environment cannot start."""

    message: str

    def result(self) -> InvocationResult:
        return InvocationResult(
            False,
            error={
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: local Error: {self.message}",
            },
        )


class FunctionPool:
    """N execution environments of one function; invocations go to an idle one."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        size: int,
        on_output: Callable[[str], None] | None = None,
        *,
        prewarm: bool = False,
    ) -> None:
        self.spec = spec
        self.env = env
        self.size = max(1, size)
        self.prewarm = prewarm
        self.on_output = on_output
        self._idle: asyncio.Queue[_Worker | _StartFailed] = asyncio.Queue()
        self._workers: list[_Worker] = []
        self._next_index = 0
        self._history: dict[int, int] = {}  # pid -> invocations, dead workers included
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._waiting = 0  # invocations waiting for an idle worker

    async def start(self) -> None:
        if self.prewarm:
            await asyncio.gather(*(self._spawn(self._new_worker()) for _ in range(self.size)))

    def _new_worker(self) -> _Worker:
        """A worker counted in the pool from now on (it starts in ``_spawn``): invocations
        arriving in the same instant see it and do not start one each."""
        worker = _Worker(self.spec, self.env, self._next_index, on_output=self.on_output)
        self._next_index += 1
        self._workers.append(worker)
        return worker

    async def _spawn(self, worker: _Worker) -> None:
        try:
            await worker.start()
        except (TimeoutError, asyncio.IncompleteReadError, OSError) as exc:
            log.error("%s: worker failed to start: %r", self.spec.logical_id, exc)  # noqa: TRY400
            await worker.kill()
            self._workers.remove(worker)
            # No retry by itself (the next invocation starts one): a retry loop here made
            # a function that dies at import hang every invocation, and each invocation
            # that came during a retry's pause started one more loop, past the pool's size.
            code = worker.process.returncode if worker.process else None
            self._fail_waiters(f"Runtime exited with error: exit status {code}")
            return
        if self._closing:
            await worker.stop()
            self._workers.remove(worker)
            self._fail_waiters("the devserver is shutting down")
            return
        self._idle.put_nowait(worker)

    def _fail_waiters(self, message: str) -> None:
        """With no worker left to serve them (none busy, none starting), the invocations
        waiting for one get the error, as Lambda answers when an environment cannot
        start; while one is left, it serves them in turn."""
        if not self._workers:
            for _ in range(self._waiting - self._idle.qsize()):
                self._idle.put_nowait(_StartFailed(message))

    def _replace(self) -> None:
        task = asyncio.create_task(self._spawn(self._new_worker()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def invoke(self, event: Any) -> InvocationResult:
        if self._closing:
            return _StartFailed("the devserver is shutting down").result()
        if len(self._workers) < self.size and (self._idle.empty() or not self._workers):
            # Scale out: a cold start. The invocation takes whichever worker is free first,
            # this new one or a busy one that finishes before it is ready (or the error of
            # failed starts, queued when no worker was left: it starts one all the same,
            # so an invocation still waiting is never left with none).
            self._replace()
        while True:
            self._waiting += 1
            try:
                worker = await self._idle.get()
            finally:
                self._waiting -= 1
            if isinstance(worker, _StartFailed):
                return worker.result()
            if worker.alive:
                break
            # It died while idle (killed between invocations). On Lambda a dead environment
            # asks for no invocation: this one waits for a live worker, a new one if need be.
            log.warning(
                "%s[%d] died while idle (exit %s): replaced",
                self.spec.logical_id,
                worker.pid,
                worker.process.returncode if worker.process else None,
            )
            await self._retire(worker)
        try:
            result = await worker.invoke(event)
        except TimeoutError:
            log.warning(
                "%s[%d] timed out after %.0f s: killed",
                self.spec.logical_id,
                worker.pid,
                self.spec.timeout,
            )
            await self._retire(worker)
            return InvocationResult(
                False,
                error={
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {self.spec.timeout:.2f} seconds",
                },
                duration_ms=self.spec.timeout * 1000,
                pid=worker.pid,
            )
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            code = worker.process.returncode if worker.process else None
            log.error(  # noqa: TRY400 - the traceback is the worker's, already on the console
                "%s[%d] crashed (%r, exit %s)", self.spec.logical_id, worker.pid, exc, code
            )
            await self._retire(worker)
            return InvocationResult(
                False,
                error={
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: local Error: Runtime exited with error: {code}",
                },
                pid=worker.pid,
            )
        except BaseException:
            # Cancelled mid-invocation: the worker's state is unknown, replace it.
            await self._retire(worker)
            raise
        self._history[worker.pid] = worker.invocations
        self._idle.put_nowait(worker)
        return result

    async def _retire(self, worker: _Worker) -> None:
        self._history[worker.pid] = worker.invocations
        await worker.kill()
        if worker in self._workers:
            self._workers.remove(worker)
        if not self._closing:
            self._replace()

    def stats(self) -> dict[str, Any]:
        live = {w.pid: w.invocations for w in self._workers if w.pid}
        return {
            "function": self.spec.name,
            "size": self.size,
            "idle": self._idle.qsize(),
            # Workers whose process is not up yet (an invocation may be waiting for one).
            "starting": sum(1 for w in self._workers if not w.pid),
            "workers": [
                {"pid": pid, "invocations": count, "alive": pid in live}
                for pid, count in ({**self._history, **live}).items()
            ],
        }

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, INIT_TIMEOUT_SECONDS)
        await asyncio.gather(*(w.stop() for w in self._workers), return_exceptions=True)


class WorkerPools:
    """Every function of the template, by logical id."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        moto_url: str,
        size: int,
        on_output: Callable[[str], None] | None = None,
        *,
        prewarm: bool = False,
    ) -> None:
        self.pools = {
            spec.logical_id: FunctionPool(
                spec, function_environment(spec, moto_url), size, on_output, prewarm=prewarm
            )
            for spec in specs
        }

    async def start(self) -> None:
        await asyncio.gather(*(pool.start() for pool in self.pools.values()))

    def __getitem__(self, logical_id: str) -> FunctionPool:
        return self.pools[logical_id]

    async def invoke(self, logical_id: str, event: Any) -> InvocationResult:
        return await self.pools[logical_id].invoke(event)

    def stats(self) -> dict[str, Any]:
        return {lid: pool.stats() for lid, pool in self.pools.items()}

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
