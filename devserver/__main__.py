"""`python -m devserver` -- the local stack; `python -m devserver token USER` -- a dev JWT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from devserver.limits import IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS
from devserver.tokens import DEMO_USERS, mint

log = logging.getLogger("devserver")


def _port(env: str, default: int) -> int:
    return int(os.environ.get(env, default))


def _server_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devserver",
        description="Switchboard's local stack (template.yaml on moto). "
        "Also: `python -m devserver token USER [--admin] [--ttl S]`, "
        "`python -m devserver invoke FUNCTION -e EVENT.json`.",
    )
    p.add_argument(
        "--ws-port",
        type=int,
        default=_port("SWITCHBOARD_WS_PORT", 8080),
        help="WebSocket + management API port (0 = any free port)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=_port("SWITCHBOARD_HTTP_PORT", 8081),
        help="HTTP API + web/ port (0 = any free port)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--template", type=Path, default=Path("template.yaml"))
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="at most this many worker processes per function, started when needed",
    )
    p.add_argument(
        "--prewarm",
        action="store_true",
        help="start every function's workers at once (slower start, no cold starts later)",
    )
    p.add_argument("--ready-file", type=Path, help="write the URLs here (JSON) once ready")
    p.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_SECONDS, metavar="S")
    p.add_argument(
        "--max-connection-seconds", type=float, default=MAX_CONNECTION_SECONDS, metavar="S"
    )
    p.add_argument(
        "--schedule-speedup",
        type=float,
        default=1.0,
        help="divide rate(...) schedule periods by this factor",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter override (repeatable)",
    )
    p.add_argument(
        "--turn",
        choices=("auto", "off"),
        default="auto",
        help="auto: start coturn on loopback for relayed calls when `turnserver` is "
        "installed and no TurnUrls is given",
    )
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="shut down when the process that started it exits (tests and benchmarks: "
        "a killed test run leaves no devserver behind)",
    )
    p.add_argument("--log-level", default=os.environ.get("SWITCHBOARD_DEV_LOG_LEVEL", "INFO"))
    return p


def _token_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m devserver token")
    p.add_argument("user")
    p.add_argument("--admin", action="store_true")
    p.add_argument("--ttl", type=int, default=86400, metavar="SECONDS")
    args = p.parse_args(argv)
    sys.stdout.write(mint(args.user, admin=args.admin, ttl_seconds=args.ttl) + "\n")
    return 0


def _banner(ws: str, http: str, management: str, moto: str, turn: str) -> str:
    lines = [
        "",
        "Switchboard devserver ready",
        f"  WebSocket   {ws}?token=<JWT>",
        f"  HTTP / web  {http}",
        f"  Management  {management}/@connections/{{connectionId}}",
        f"  moto (AWS)  {moto}   (AWS_ENDPOINT_URL={moto} AWS_ACCESS_KEY_ID=testing ...)",
        f"  TURN        {turn}",
        "",
        "Dev tokens (24 h):",
    ]
    tokens = {user: mint(user, admin=admin) for user, admin in DEMO_USERS}
    for user, admin in DEMO_USERS:
        lines.append(f"  {user:<6}{' (admin)' if admin else '        '} {tokens[user]}")
    lines += [
        "",
        "Try it (the websockets client is in .venv; or `npx wscat -c URL`):",
        f"  .venv/bin/python -m websockets '{ws}?token={tokens['alice']}'",
        '  then send: {"action": "ping", "id": "1"}',
        "",
    ]
    return "\n".join(lines)


async def _when_orphaned(parent: int, stop: asyncio.Event) -> None:
    """Sets ``stop`` once the parent has exited (the process is re-parented), so a test
    run killed with SIGKILL, which cannot clean up, still leaves no devserver running."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the process that started the devserver exited: shutting down")
    stop.set()


async def _serve(args: argparse.Namespace) -> int:
    from devserver.server import DevServer, DevServerOptions

    options = DevServerOptions(
        template=args.template,
        host=args.host,
        ws_port=args.ws_port,
        http_port=args.http_port,
        workers=args.workers,
        prewarm=args.prewarm,
        idle_timeout=args.idle_timeout,
        max_connection_seconds=args.max_connection_seconds,
        schedule_speedup=args.schedule_speedup,
        parameters=dict(p.split("=", 1) for p in args.param),
        ready_file=args.ready_file,
        turn=args.turn == "auto",
    )
    server = DevServer(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watchdog = (
        loop.create_task(_when_orphaned(os.getppid(), stop)) if args.exit_with_parent else None
    )
    try:
        await server.start()
        print(
            _banner(
                server.ws_url,
                server.http_url,
                server.management_url,
                server.moto_url,
                server.turn_note,
            ),
            flush=True,
        )
        await stop.wait()
        log.info("shutting down: closing connections ($disconnect), then workers and moto")
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "token":
        return _token_main(argv[1:])
    if argv and argv[0] == "invoke":
        from devserver.invoke import main as invoke_main

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        return invoke_main(argv[1:])
    args = _server_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # Third-party chatter (botocore, werkzeug/moto request logs) stays quiet by default.
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
