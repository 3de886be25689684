"""What keeps another site's page in the developer's browser away from a running devserver.

The devserver listens on 127.0.0.1, but a browser runs every site's scripts on the same
machine: any page may send requests to 127.0.0.1 (and read the answers where CORS lets
it), or rebind its own domain name to 127.0.0.1 (DNS rebinding: then it is "same origin"
and CORS does not matter, but its requests name that domain in `Host`). So the dev
endpoints (`/__devserver/`: tokens for anyone, every mail, fault injection) and the
embedded AWS (moto: every table, queue and object, no signature checked) answer only
requests naming this machine, from no page or from a page this machine served.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

REFUSED = b'{"message": "the devserver answers its own pages and local tools only"}'


def _hostname(netloc: str) -> str:
    return urlsplit(f"//{netloc}").hostname or ""


def names_this_machine(host: str) -> bool:
    """A `Host` that is `localhost` or an IP address: a rebound domain name is neither
    (any address: a browser names in `Host` the address it connected to, so a remote page
    cannot make it name another one)."""
    name = _hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def local_page(origin: str, host: str) -> bool:
    """A page's ``origin`` is one this machine may have served: ``localhost``, a loopback
    or private-network address (the demo opened from a phone, `--host 0.0.0.0`), or the
    very name the request was sent to (`Host`). Not any IP address: a site served from a
    public one (no name to rebind, no certificate needed) is another site."""
    name = _hostname(urlsplit(origin).netloc)
    if name and name == _hostname(host):
        return True
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # Named ranges, not `is_private`: that takes in IPv6 blocks that reach public hosts
    # (6to4's 2002::/16, Teredo's 2001::/32).
    return any(address in network for network in _LOCAL_NETWORKS)


_LOCAL_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",  # loopback
        "10.0.0.0/8",  # private networks (RFC 1918)
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",  # link-local
        "::1/128",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
    )
]


def local_request(host: str, origin: str | None) -> bool:
    """``host`` names this machine and ``origin`` (the page's, None: not a page) is one of
    its pages."""
    if not names_this_machine(host):
        return False
    return origin is None or local_page(origin, host)


class LocalOnlyApp:
    """A WSGI app (moto's) answering 403 to requests ``local_request`` refuses."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if not local_request(host, environ.get("HTTP_ORIGIN")):
            start_response("403 Forbidden", [("Content-Type", "application/json")])
            return [REFUSED]
        return self.app(environ, start_response)
