"""e2e fixtures: the devserver started as a real subprocess, on free ports.

`devserver` is shared by the session (the real template.yaml); `start_devserver` starts
extra ones with custom flags or a custom template (stopped at the end of the test).
Every wait is bounded and all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0

sys.path.insert(0, str(ROOT))
from devserver.tokens import mint  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests here with asyncio.run: no async plugin is needed for e2e."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


@dataclass
class RunningDevserver:
    ws: str
    http: str
    moto: str
    management: str
    resources: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    turn: dict[str, str] | None = None  # {"url", "log"} of the coturn it started
    _clients: dict[str, Any] = field(default_factory=dict)

    def token(self, user_id: str, admin: bool = False, ttl: int = 3600) -> str:
        return mint(user_id, admin=admin, ttl_seconds=ttl)

    def url(self, token: str | None) -> str:
        return self.ws if token is None else f"{self.ws}?token={token}"

    def aws(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,
                endpoint_url=self.moto,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(account_id_endpoint_mode="disabled"),
            )
        return self._clients[service]

    def management_client(self) -> Any:
        return boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=self.management,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}),
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _start(workdir: Path, args: list[str], env: dict[str, str] | None = None) -> RunningDevserver:
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "ready.json"
    log_path = workdir / "devserver.log"
    ready.unlink(missing_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devserver",
                "--ws-port",
                "0",
                "--http-port",
                "0",
                "--ready-file",
                str(ready),
                # No coturn unless a test asks for it (`--turn auto`): e2e needs no relay.
                "--turn",
                "off",
                "--exit-with-parent",  # a killed test run leaves no devserver behind
                *args,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: killed as a whole at the end
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"devserver exited {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise RuntimeError(f"devserver not ready in {READY_TIMEOUT}s:\n{log_path.read_text()}")
        time.sleep(0.1)
    info = json.loads(ready.read_text())
    return RunningDevserver(
        ws=info["ws"],
        http=info["http"],
        moto=info["moto"],
        management=info["management"],
        resources=info["resources"],
        process=process,
        log_path=log_path,
        turn=info.get("turn"),
    )


@pytest.fixture(scope="session")
def devserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevserver]:
    server = _start(tmp_path_factory.mktemp("devserver"), [])
    try:
        yield server
    finally:
        server.stop()


StartDevserver = Callable[..., RunningDevserver]


@pytest.fixture
def start_devserver(tmp_path: Path) -> Iterator[StartDevserver]:
    started: list[RunningDevserver] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunningDevserver:
        server = _start(tmp_path / f"devserver-{len(started)}", list(args), env)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
