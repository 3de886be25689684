"""Browser fixtures: headless Chromium (the Debian package, never a downloaded one) driven
by Playwright against the devserver's demo app, one browser context per user.

- `devserver` is started by the e2e factory (tests/e2e/conftest.py) with loopback-only ICE
  servers: no public STUN (browser traffic stays on 127.0.0.1) and a TURN URL on a port
  reserved for `turn_server`, which starts a real coturn there with the devserver's own
  TURN secret (read from Secrets Manager in moto). `start_devserver` is e2e's, reused.
- `browser` is Chromium at /usr/bin/chromium with the flags below: fake camera and
  microphone, loopback ICE candidates allowed (only loopback exists in CI).
- `open_app(user)` opens the demo app in a fresh context (a fresh device) signed in as
  `user`; `open_page()` opens any page. Uncaught page errors fail the test.

Missing Chromium or coturn is a failure with the install command, never a skip: `.ci/run`
installs both, and a developer runs `apt-get install -y chromium coturn` once.
Every wait is bounded; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.browser.oidc import CLIENT_ID as OIDC_CLIENT_ID
from tests.browser.oidc import OidcProvider, start_provider
from tests.e2e.conftest import RunningDevserver, _start, start_devserver

__all__ = ["AppPage", "TurnServer", "devserver", "start_devserver"]

CHROMIUM = Path(os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium"))
TURNSERVER = os.environ.get("SWITCHBOARD_TURNSERVER", "turnserver")
# Private, shared, link-local (169.254.169.254: cloud metadata) and unique-local ranges:
# a TURN relay must not reach them. Loopback is left to --allow-loopback-peers.
DENIED_PEER_RANGES = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.168.0.0-192.168.255.255",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)
CHROMIUM_FLAGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# The bound of every Playwright action, wait and expect(): generous for a busy 2-core CI
# machine (a Lambda invocation there can take seconds), still bounded. Never a timing
# assertion: a passing expect() returns as soon as its condition holds.
DEFAULT_TIMEOUT_MS = 30_000
expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
DEMO_USERS = ("alice", "bob", "carol", "admin")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


def require_tool(path: str | Path, package: str) -> str:
    """The absolute path of a required tool, or a failure that says how to install it."""
    found = shutil.which(str(path))
    if found is None:
        pytest.fail(
            f"{path} not found: browser tests need the Debian package {package!r} "
            f"(`apt-get install -y {package}`; .ci/run installs it). They are never skipped.",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = require_tool(CHROMIUM, "chromium")
    browser = playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_FLAGS
    )
    try:
        yield browser
    finally:
        browser.close()


@dataclass
class AppPage:
    """One user's device: a browser context with the demo app open and signed in."""

    user: str
    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    def eval(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def close(self) -> None:
        self.context.close()


OpenApp = Callable[..., AppPage]
OpenPage = Callable[..., AppPage]


@pytest.fixture
def open_page(browser: Browser, devserver: RunningDevserver) -> Iterator[OpenPage]:
    """`open_page(path="/", user="-", **context_options)`: a fresh context with `path` open.
    Uncaught exceptions and client errors in any page fail the test at teardown."""
    opened: list[AppPage] = []

    def open_(path: str = "/", user: str = "-", **context_options: Any) -> AppPage:
        context = browser.new_context(**context_options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        page = context.new_page()
        app = AppPage(user, context, page)
        page.on("pageerror", lambda exc: app.errors.append(f"{user}: {exc}"))
        # The demo app logs every error its client reports (a failed ack, a refused ICE
        # candidate...) as "switchboard: ...": none is expected in a passing test.
        page.on(
            "console",
            lambda msg: (
                app.errors.append(f"{user}: {msg.text}")
                if msg.text.startswith("switchboard:")
                else None
            ),
        )
        page.goto(devserver.http + path)
        opened.append(app)
        return app

    yield open_
    errors = [error for app in opened for error in app.errors]
    for app in opened:
        # A test may have closed it already (a user going offline).
        with contextlib.suppress(Exception):
            app.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def open_app(open_page: OpenPage) -> OpenApp:
    """`open_app("alice", base_query="ice=relay", **context_options)`: the demo app signed
    in as that user, its WebSocket connected (the status line says so)."""

    def open_(user: str, base_query: str = "", **context_options: Any) -> AppPage:
        query = f"user={user}" + (f"&{base_query}" if base_query else "")
        app = open_page(f"/?{query}", user=user, **context_options)
        app.page.get_by_role("status", name="Connection").filter(has_text="online").wait_for()
        return app

    return open_


# --------------------------------------------------------------------------- TURN


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def turn_port() -> int:
    """The port the devserver's TurnUrls name; `turn_server` listens on it (UDP and TCP,
    so it must be free for both)."""
    for _ in range(50):
        port = _free_port(socket.SOCK_DGRAM)
        with socket.socket() as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """The deployment's IdP for the admin dashboard's sign-in (tests/browser/oidc.py)."""
    provider = start_provider()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def devserver(
    tmp_path_factory: pytest.TempPathFactory, turn_port: int, oidc_provider: OidcProvider
) -> Iterator[RunningDevserver]:
    server = _start(
        tmp_path_factory.mktemp("browser-devserver"),
        [
            "--param",
            "StunUrls=",
            "--param",
            f"TurnUrls=turn:127.0.0.1:{turn_port}?transport=udp",
            # The dashboard signs in with this IdP, as a deployment with AdminOidc* does.
            "--param",
            f"AdminOidcAuthorizeUrl={oidc_provider.url}/authorize",
            "--param",
            f"AdminOidcTokenUrl={oidc_provider.url}/token",
            "--param",
            f"AdminOidcClientId={OIDC_CLIENT_ID}",
        ],
    )
    try:
        yield server
    finally:
        server.stop()


@dataclass
class TurnServer:
    host: str
    port: int
    secret: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path, port: int) -> None:
    ready = f"UDP listener opened on: 127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited {process.returncode}:\n{log_path.read_text()}")
        if ready in log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"turnserver not listening on {port}:\n{log_path.read_text()}")


def turn_secret(ds: RunningDevserver) -> str:
    """The devserver's TURN REST API secret, as call:ice-servers reads it."""
    arn = ds.resources["TurnSecret"]
    secret: str = ds.aws("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    return secret


@pytest.fixture(scope="session")
def turn_server(
    devserver: RunningDevserver, turn_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TurnServer]:
    """A real coturn on 127.0.0.1:`turn_port` accepting the TURN REST API credentials that
    call:ice-servers hands out (`use-auth-secret`, `static-auth-secret` = the devserver's
    TurnSecret), relaying on loopback."""
    binary = require_tool(TURNSERVER, "coturn")
    workdir = tmp_path_factory.mktemp("turnserver")
    secret = turn_secret(devserver)
    relay_low = max(_free_port(socket.SOCK_DGRAM), 1024)
    log_path = workdir / "turnserver.out"
    config = workdir / "turnserver.conf"
    config.write_text("# everything is on the command line; /etc/turnserver.conf is not read\n")
    args = [
        binary,
        "-c",
        str(config),
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={turn_port}",
        f"--min-port={relay_low}",
        f"--max-port={min(relay_low + 200, 65535)}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        "--realm=switchboard.local",
        "--fingerprint",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-rfc5780",
        "--no-stun-backward-compatibility",
        # Loopback is a "forbidden peer" by default (SSRF protection): allowed here, the
        # only network this test has.
        "--allow-loopback-peers",
        # What a deployed relay must set too (docs/operations.md): bounded allocations
        # per user and in all, a bounded allocation lifetime, and no relaying to private
        # or link-local (cloud metadata) addresses.
        "--user-quota=12",
        "--total-quota=100",
        "--max-allocate-lifetime=3600",
        *(f"--denied-peer-ip={r}" for r in DENIED_PEER_RANGES),
        "--log-file=stdout",
        "--verbose",
        f"--pidfile={workdir / 'turnserver.pid'}",
        f"--userdb={workdir / 'turnserver.db'}",
    ]
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = TurnServer("127.0.0.1", turn_port, secret, process, log_path)
    try:
        _wait_listening(process, log_path, turn_port)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
