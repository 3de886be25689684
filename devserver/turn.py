"""A real TURN server (coturn) on loopback, for relayed calls on the local stack.

`call:ice-servers` hands out TURN REST API credentials signed with the template's
TurnSecret; coturn checks them with `use-auth-secret` + `static-auth-secret`, as a deployed
coturn would. The devserver starts one when `turnserver` is installed (`make dev`), and the
browser tests use the same code through it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Coturn", "coturn_binary", "free_udp_and_tcp_port", "start_coturn"]

READY_TIMEOUT = 30.0
INSTALL_HINT = "apt-get install -y coturn"
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


def coturn_binary() -> str | None:
    """The coturn server binary (`SWITCHBOARD_TURNSERVER` overrides), or None."""
    return shutil.which(os.environ.get("SWITCHBOARD_TURNSERVER", "turnserver"))


def _free_port(host: str, kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_and_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (TURN listens on both)."""
    for _ in range(50):
        port = _free_port(host, socket.SOCK_DGRAM)
        with socket.socket() as tcp:
            try:
                tcp.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


@dataclass
class Coturn:
    host: str
    port: int
    secret: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"turn:{self.host}:{self.port}?transport=udp"

    @property
    def stun_url(self) -> str:
        return f"stun:{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_coturn(
    binary: str, secret: str, workdir: Path, host: str = "127.0.0.1", port: int = 0
) -> Coturn:
    """Starts coturn on ``host:port`` (0 = a free one), relaying on ``host`` too, and waits
    (bounded) until it listens. Raises RuntimeError with its log if it does not."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_udp_and_tcp_port(host)
    relay_low = max(_free_port(host, socket.SOCK_DGRAM), 1024)
    log_path = workdir / "turnserver.out"
    config = workdir / "turnserver.conf"
    config.write_text("# everything is on the command line; /etc/turnserver.conf is not read\n")
    args = [
        binary,
        "-c",
        str(config),
        f"--listening-ip={host}",
        f"--relay-ip={host}",
        f"--listening-port={port}",
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
        # only network the local stack relays on.
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
        process = subprocess.Popen(  # noqa: S603 - our own argument list, no shell
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Coturn(host, port, secret, process, log_path)
    ready = f"UDP listener opened on: {host}:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while ready not in server.log():
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited {process.returncode}:\n{server.log()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"turnserver not listening on {port}:\n{server.log()}")
        time.sleep(0.1)
    return server
