"""The API Gateway management API (`@connections`) on the WebSocket port.

`POST|GET|DELETE /<stage>/@connections/{id}` (and `/@connections/{id}`, the bare form
moto answers on). Unknown or closed ids get a REAL 410 GoneException, in the shape
botocore parses into `client.exceptions.GoneException` -- moto's own emulation never
raises it. SigV4 signatures are not checked. Posts can be made to fail on purpose
(throttling, 5xx) with `/__devserver/faults` (see devserver/faults.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from urllib.parse import unquote

from aiohttp import WSCloseCode, web

from devserver.effects import EFFECTS, function_of
from devserver.faults import FAULTS, ManagementFaults, error_response
from devserver.websocket_api import MAX_MESSAGE_BYTES, Connection, WebSocketApi

__all__ = ["add_management_routes"]

log = logging.getLogger("devserver.management")


def _error(status: int, error_type: str, message: str) -> web.Response:
    # botocore (rest-json) reads the error code from x-amzn-ErrorType; `message` is shown.
    return web.Response(
        status=status,
        text=json.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/"},
    )


def _iso(epoch_ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def add_management_routes(
    app: web.Application, api: WebSocketApi, faults: ManagementFaults = FAULTS
) -> None:
    def lookup(request: web.Request) -> Connection | None:
        # Ids arrive URL-encoded ("...%3D"); unquoting an already decoded id is harmless.
        conn_id = unquote(request.match_info["connection_id"])
        conn = api.connections.get(conn_id)
        return conn if conn is not None and conn.open else None

    async def post(request: web.Request) -> web.Response:
        data = await request.read()
        # Throttling happens at API Gateway's front door, before the connection is looked up.
        conn_id = unquote(request.match_info["connection_id"])
        injected = faults.check(conn_id)
        if injected is not None:
            log.info("MANAGEMENT POST %s: injected %d", conn_id, injected)
            return error_response(injected)
        conn = lookup(request)
        if conn is None:
            return _error(410, "GoneException", "Gone")
        if len(data) > MAX_MESSAGE_BYTES:
            return _error(413, "PayloadTooLargeException", "Message too long")
        EFFECTS.record(
            function_of(request.headers.get("User-Agent", "")),
            "execute-api",
            "PostToConnection",
            conn.id,
        )
        try:
            text = data.decode()
        except UnicodeDecodeError:
            await conn.send(data)
        else:
            await conn.send(text)
        return web.Response(status=200)

    async def get(request: web.Request) -> web.Response:
        conn = lookup(request)
        if conn is None:
            return _error(410, "GoneException", "Gone")
        # The wire names are camelCase (botocore maps them to ConnectedAt, Identity, ...).
        body = {
            "connectedAt": _iso(conn.connected_at),
            "lastActiveAt": _iso(conn.last_active),
            "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
        }
        return web.json_response(body)

    async def delete(request: web.Request) -> web.Response:
        conn = lookup(request)
        if conn is None:
            return _error(410, "GoneException", "Gone")
        log.info("MANAGEMENT DELETE %s", conn.id)
        EFFECTS.record(
            function_of(request.headers.get("User-Agent", "")),
            "execute-api",
            "DeleteConnection",
            conn.id,
        )
        api.close_soon(conn, WSCloseCode.OK, "Connection deleted")
        return web.Response(status=204)

    for prefix in (f"/{api.config.stage}", ""):
        path = prefix + "/@connections/{connection_id}"
        app.router.add_post(path, post)
        app.router.add_get(path, get)
        app.router.add_delete(path, delete)
