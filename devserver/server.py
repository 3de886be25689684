"""The whole local stack, in start order: moto, provisioning, workers, APIs, mappings.

Ports are bound first (port 0 = any free port) so the management endpoint functions get
in their environment is known before their workers start. When coturn is installed and no
TurnUrls is given, a TURN server is started on loopback with the TurnSecret before the
workers, and its URL becomes TurnUrls (and StunUrls, unless given). Shutdown runs in
reverse: sockets closed first (their `$disconnect` still runs on live workers), then
mappings, workers, coturn and moto; the ready file goes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from moto.server import ThreadedMotoServer

from devserver.aws_faults import moto_server
from devserver.emf import EmfSink
from devserver.event_sources import EventSources
from devserver.http_api import HttpApi
from devserver.lambda_api import add_lambda_routes
from devserver.limits import IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS
from devserver.management_api import add_management_routes
from devserver.moto_fidelity import make_dynamodb_writes_atomic
from devserver.provision import aws_client, provision
from devserver.streams import watch_stream_appends
from devserver.template import Template, load_yaml
from devserver.turn import INSTALL_HINT, Coturn, coturn_binary, start_coturn
from devserver.websocket_api import WebSocketApi, WebSocketApiConfig
from devserver.workers import WorkerPools

__all__ = ["DevServer", "DevServerOptions"]

log = logging.getLogger("devserver")


@dataclass
class DevServerOptions:
    template: Path = Path("template.yaml")
    host: str = "127.0.0.1"
    ws_port: int = 8080
    http_port: int = 8081
    workers: int = 2
    prewarm: bool = False
    idle_timeout: float = IDLE_TIMEOUT_SECONDS
    max_connection_seconds: float = MAX_CONNECTION_SECONDS
    schedule_speedup: float = 1.0
    parameters: dict[str, str] = field(default_factory=dict)
    ready_file: Path | None = None
    web_root: Path | None = None
    turn: bool = True  # start coturn when installed and TurnUrls is not given


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


class DevServer:
    def __init__(self, options: DevServerOptions) -> None:
        self.options = options
        # The deployed template names the uploads bucket's CORS origins explicitly; locally
        # the demo pages come from whatever port the devserver got, so any origin may PUT.
        parameters = dict(options.parameters)
        if "UploadAllowedOrigins" in (load_yaml(options.template).get("Parameters") or {}):
            parameters.setdefault("UploadAllowedOrigins", "*")
        self.template = Template(options.template, parameters)
        self.moto: ThreadedMotoServer | None = None
        self.moto_url = ""
        self.ws_url = ""
        self.http_url = ""
        self.management_url = ""
        self.resources: dict[str, str] = {}
        self.pools: WorkerPools | None = None
        self.ws_api: WebSocketApi | None = None
        self.event_sources: EventSources | None = None
        self.coturn: Coturn | None = None
        self.turn_note = ""  # what the banner says about relayed calls
        self.emf: EmfSink | None = None
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        opts = self.options
        ws_sock = _bind(opts.host, opts.ws_port)
        http_sock = _bind(opts.host, opts.http_port)
        ws_port, http_port = ws_sock.getsockname()[1], http_sock.getsockname()[1]

        make_dynamodb_writes_atomic()
        watch_stream_appends()  # the stream mappings wake on new records (devserver/streams.py)
        self.moto = moto_server(opts.host)  # ThreadedMotoServer + fault injection
        self.moto.start()
        moto_host, moto_port = self.moto.get_host_and_port()
        self.moto_url = f"http://{moto_host}:{moto_port}"
        self.template.moto_url = self.moto_url
        self.template.ws_base_url = f"http://{opts.host}:{ws_port}"
        self.resources = await asyncio.to_thread(provision, self.template, self.moto_url)
        await asyncio.to_thread(self._start_turn)

        functions = self.template.functions()
        self.emf = EmfSink(self.moto_url)
        self.pools = WorkerPools(
            functions, self.moto_url, opts.workers, self.emf.offer, prewarm=opts.prewarm
        )
        await self.pools.start()

        ws_app = web.Application(client_max_size=1024 * 1024)
        config = WebSocketApiConfig.from_template(self.template)
        stage = config.stage if config else "$default"
        if config is not None:
            self.ws_api = WebSocketApi(
                config, self.pools, opts.idle_timeout, opts.max_connection_seconds
            )
            self.ws_api.add_routes(ws_app)
            add_management_routes(ws_app, self.ws_api)
        http_app = web.Application(client_max_size=10 * 1024 * 1024)
        web_root = opts.web_root or self.template.base_dir / "web"
        HttpApi(functions, self.pools, web_root).add_routes(http_app)
        add_lambda_routes(http_app, functions, self.pools)  # Invoke, for scripts/replay.py

        for app, sock in ((ws_app, ws_sock), (http_app, http_sock)):
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            await web.SockSite(runner, sock, shutdown_timeout=2.0).start()
            self._runners.append(runner)

        self.event_sources = EventSources(
            functions, self.pools, self.moto_url, opts.schedule_speedup
        )
        self.event_sources.start()
        self.emf.start()

        self.ws_url = f"ws://{opts.host}:{ws_port}/{stage}"
        self.management_url = f"http://{opts.host}:{ws_port}/{stage}"
        self.http_url = f"http://{opts.host}:{http_port}"
        if opts.ready_file is not None:
            self._write_ready_file(opts.ready_file)

    def _start_turn(self) -> None:
        opts = self.options
        if "TurnUrls" in opts.parameters:
            self.turn_note = "TurnUrls as given (--param)"
            return
        binary = coturn_binary() if opts.turn else None
        if binary is None:
            self.turn_note = (
                "off: calls get STUN only, `?ice=relay` cannot connect. For relayed calls "
                f"`{INSTALL_HINT}` (then `make dev` starts it on loopback), or "
                "--param TurnUrls=turn:HOST:PORT?transport=udp for a coturn of your own "
                "with static-auth-secret = the TurnSecret"
            )
            return
        secret: str = aws_client("secretsmanager", self.moto_url).get_secret_value(
            SecretId=self.resources["TurnSecret"]
        )["SecretString"]
        workdir = Path(tempfile.mkdtemp(prefix="switchboard-turn-"))
        try:
            self.coturn = start_coturn(binary, secret, workdir)
        except RuntimeError as exc:  # the stack is still useful without relayed calls
            log.warning("turn     coturn did not start: %s", exc)
            self.turn_note = "off: coturn did not start (log above); STUN only"
            return
        self.template.parameters["TurnUrls"] = [self.coturn.url]
        if "StunUrls" not in opts.parameters:  # the public default needs the internet
            self.template.parameters["StunUrls"] = [self.coturn.stun_url]
        self.turn_note = f"{self.coturn.url} (coturn pid {self.coturn.process.pid}, loopback)"
        log.info("turn     coturn on %s, log %s", self.coturn.url, self.coturn.log_path)

    def _write_ready_file(self, path: Path) -> None:
        doc = {
            "ws": self.ws_url,
            "http": self.http_url,
            "moto": self.moto_url,
            "management": self.management_url,
            "resources": self.resources,
            "pid": os.getpid(),
            "turn": None
            if self.coturn is None
            else {"url": self.coturn.url, "log": str(self.coturn.log_path)},
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(path)  # atomic: readers never see a half-written file

    async def stop(self) -> None:
        if self.ws_api is not None:
            await self.ws_api.close_all()
        if self.event_sources is not None:
            await self.event_sources.stop()
        for runner in self._runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        if self.pools is not None:
            await self.pools.close()
        if self.coturn is not None:
            await asyncio.to_thread(self.coturn.stop)
            shutil.rmtree(self.coturn.log_path.parent, ignore_errors=True)
        if self.emf is not None:
            await self.emf.stop()
        if self.moto is not None:
            await asyncio.to_thread(self.moto.stop)
        if self.options.ready_file is not None:
            # A ready file left behind would tell the next reader a dead server is up.
            self.options.ready_file.unlink(missing_ok=True)
        log.info("devserver stopped")
