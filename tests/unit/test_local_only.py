"""devserver/local_only.py: which requests the embedded AWS (moto) and the dev endpoints
answer. The WSGI wrapper is exercised as moto's server calls it, around a stand-in app that
records what reached it (moto itself is tested end to end in tests/e2e/test_devserver.py)."""

from __future__ import annotations

from typing import Any

import pytest

from devserver.local_only import REFUSED, LocalOnlyApp


def _ask(host: str, origin: str | None) -> tuple[str, list[bytes], int]:
    reached: list[dict[str, Any]] = []

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        reached.append(environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    statuses: list[str] = []
    environ: dict[str, Any] = {"HTTP_HOST": host, "SERVER_NAME": "127.0.0.1"}
    if origin is not None:
        environ["HTTP_ORIGIN"] = origin
    body = LocalOnlyApp(inner)(environ, lambda status, headers: statuses.append(status))
    return statuses[0], list(body), len(reached)


@pytest.mark.parametrize(
    "origin",
    [
        # A site served from a public address (no name to rebind, no TLS needed): any
        # IP address was taken for "this machine", so its page read every table and
        # purged queues with "simple" form POSTs.
        "http://93.184.216.34",
        "http://[2606:2800:220:1:248:1893:25c8:1946]:8080",
        "http://[::ffff:93.184.216.34]",
        "http://[2002:5db8:d822::1]",  # 6to4: 93.184.216.34 again
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
        "https://evil.example",
        "null",  # a sandboxed frame or a file
    ],
)
def test_another_sites_page_is_refused(origin: str) -> None:
    status, body, reached = _ask("127.0.0.1:4566", origin)
    assert (status, body, reached) == ("403 Forbidden", [REFUSED], 0)


@pytest.mark.parametrize(
    "host",
    ["evil.example:4566", "evil.example"],
)
def test_a_request_naming_another_machine_is_refused(host: str) -> None:
    status, _, reached = _ask(host, None)
    assert (status, reached) == ("403 Forbidden", 0)


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:4566", None),  # the functions and local tools: no page
        ("127.0.0.1:4566", "http://127.0.0.1:8081"),  # the demo page
        ("localhost:4566", "http://localhost:8081"),
        ("[::1]:4566", "http://[::1]:8081"),
        ("127.0.0.1:4566", "http://[::ffff:127.0.0.1]:8081"),
        ("127.0.0.1:4566", "http://bucket.localhost:8081"),
        ("127.0.0.1:4566", "http://10.1.2.3:8081"),
        ("127.0.0.1:4566", "http://[fd00::5]:8081"),
        # `--host 0.0.0.0`: the demo opened from a phone on the developer's network
        ("192.168.1.20:4566", "http://192.168.1.20:8081"),
        # ... or from a cloud machine's public address: the page names the same machine
        ("93.184.216.34:4566", "http://93.184.216.34:8081"),
    ],
)
def test_this_machines_pages_and_tools_are_answered(host: str, origin: str | None) -> None:
    status, body, reached = _ask(host, origin)
    assert (status, body, reached) == ("200 OK", [b"{}"], 1)
