"""Browser fixtures: headless Chromium (the Debian package, never a downloaded one) driven
by Playwright against the devserver's demo app, one browser context per user.

- `devserver` is started by the e2e factory (tests/e2e/conftest.py) as `make dev` starts
  it: with a real coturn on loopback that checks the credentials call:ice-servers mints
  with the devserver's TurnSecret (`turn_server` describes it), and no public STUN
  (browser traffic stays on 127.0.0.1). `start_devserver` is e2e's, reused.
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
CHROMIUM_FLAGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # getDisplayMedia without a picker: Chromium shares the (virtual) entire screen.
    "--auto-select-desktop-capture-source=Entire screen",
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
    """`open_page(path="/", user="-", init_script=None, **context_options)`: a fresh
    context with `path` open (`init_script` runs in the page before its own scripts).
    Uncaught exceptions and client errors in any page fail the test at teardown."""
    opened: list[AppPage] = []

    def open_(
        path: str = "/", user: str = "-", init_script: str | None = None, **context_options: Any
    ) -> AppPage:
        context = browser.new_context(**context_options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        if init_script is not None:
            context.add_init_script(init_script)
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
    """`open_app("alice", base_query="ice=relay", init_script=None, **context_options)`:
    the demo app signed in as that user, its WebSocket connected (the status line says so)."""

    def open_(
        user: str, base_query: str = "", init_script: str | None = None, **context_options: Any
    ) -> AppPage:
        query = f"user={user}" + (f"&{base_query}" if base_query else "")
        app = open_page(f"/?{query}", user=user, init_script=init_script, **context_options)
        app.page.get_by_role("status", name="Connection").filter(has_text="online").wait_for()
        return app

    return open_


# --------------------------------------------------------------------------- TURN
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
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[RunningDevserver]:
    """The devserver as `make dev` runs it with coturn installed: it starts coturn on
    loopback with its TurnSecret and hands out its URL (devserver/turn.py). No public STUN:
    browser traffic stays on 127.0.0.1."""
    require_tool(TURNSERVER, "coturn")
    server = _start(
        tmp_path_factory.mktemp("browser-devserver"),
        [
            "--turn",
            "auto",
            "--param",
            "StunUrls=",
            # Search reads windows of 10 messages here, so that a message older than the
            # first request's 40 is found through "Search older messages" (test_search.py).
            "--param",
            "SearchDocumentsPerRead=10",
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
    """The devserver's coturn, as its ready file describes it."""

    url: str
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def turn_server(devserver: RunningDevserver) -> TurnServer:
    if devserver.turn is None:
        pytest.fail(f"the devserver started no coturn:\n{devserver.log()[-3000:]}")
    url = devserver.turn["url"]
    port = int(url.split("?")[0].rsplit(":", 1)[1])
    return TurnServer(url, port, Path(devserver.turn["log"]))
