"""API Gateway WebSocket API emulation, driven by the template's ApiGatewayV2 resources.

What is emulated, as API Gateway does it:
- `$connect`: identity sources checked first (missing -> 401, no Lambda call), then the
  REQUEST authorizer (error -> 401, Deny -> 403), then the `$connect` integration (error
  or non-2xx -> handshake refused, and no `$disconnect` ever). Only then the upgrade.
- Route selection with the API's RouteSelectionExpression (`$request.body.action`):
  a JSON object whose selected value equals a route key -> that route, else `$default`,
  else API Gateway's `{"message": "Forbidden", ...}` frame.
- Route responses: only routes that have one send the integration's `body` back.
- MOCK integrations (the `keepalive` route): no Lambda; the integration response's
  `$default` template is rendered with the request's `$context` variables and sent if the
  route has a route response. Only `$context.<name>` references are supported (anything
  else in a template is refused when the template is loaded, not rendered wrong).
  Integration errors reach the client as `{"message": "Internal server error", ...}`.
- API Gateway's quotas: a frame over 32 KB or a message over 128 KB (a message larger
  than a frame must be split into several frames) closes the socket with 1009; idle
  timeout and maximum duration (close 1001).
- `$disconnect` exactly once after the socket closes, whatever closed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web, web_ws
from aiohttp._websocket.reader_py import WebSocketDataQueue, WebSocketReader
from aiohttp.http_websocket import WebSocketError

from devserver import ACCOUNT_ID, REGION
from devserver.limits import (
    IDLE_TIMEOUT_SECONDS,
    MAX_CONNECTION_SECONDS,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
)
from devserver.template import Template, TemplateError
from devserver.workers import InvocationResult, WorkerPools

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "Connection",
    "WebSocketApi",
    "WebSocketApiConfig",
    "new_id",
]

log = logging.getLogger("devserver.ws")

# API Gateway's WebSocket quotas (devserver/limits.py; not adjustable on AWS): a frame over
# 32 KB or a message over 128 KB closes the connection with 1009.
_DATA_OPCODES = frozenset(
    {WSMsgType.TEXT.value, WSMsgType.BINARY.value, WSMsgType.CONTINUATION.value}
)


class FrameLimitedReader(WebSocketReader):
    """aiohttp's frame parser with API Gateway's per-frame quota (aiohttp itself limits
    whole messages only). The pure-Python parser: the compiled one's frame handler cannot
    be overridden from Python."""

    def _handle_frame(
        self, fin: bool, opcode: int, payload: bytes | bytearray, compressed: int
    ) -> None:
        if opcode in _DATA_OPCODES and len(payload) > MAX_FRAME_BYTES:
            raise WebSocketError(
                WSCloseCode.MESSAGE_TOO_BIG,
                f"frame of {len(payload)} bytes: the limit is {MAX_FRAME_BYTES}",
            )
        super()._handle_frame(fin, opcode, payload, compressed)


# aiohttp builds each server socket's parser (and the queue it feeds, which must be the
# pure-Python one too) from these names; the devserver serves no other WebSocket, so every
# socket it accepts gets API Gateway's frame quota.
web_ws.WebSocketReader = FrameLimitedReader  # type: ignore[attr-defined]
web_ws.WebSocketDataQueue = WebSocketDataQueue  # type: ignore[attr-defined]
_ID_ALPHABET = string.ascii_letters + string.digits


def new_id() -> str:
    """An id shaped like API Gateway's connection/request ids: 15 base64 chars and '='."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def now_ms() -> int:
    return int(time.time() * 1000)


def request_time(epoch_ms: int) -> str:
    # API Gateway's requestTime: "26/Nov/2025:06:48:00 +0000"
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))


@dataclass
class Route:
    key: str
    function: str | None  # logical id of the integration's function
    has_response: bool = False
    authorizer: str | None = None  # logical id of the authorizer's function
    identity_sources: list[str] = field(default_factory=list)
    # a MOCK integration's response template (rendered with $context); no function then
    mock_response: str | None = None


# The $context variables a mapping template may use here: those _context() provides.
_TEMPLATE_REFERENCE = re.compile(r"\$context\.([A-Za-z]+)")
_TEMPLATE_CONTEXT = frozenset(
    {
        "apiId",
        "connectedAt",
        "connectionId",
        "domainName",
        "eventType",
        "extendedRequestId",
        "messageId",
        "requestId",
        "requestTimeEpoch",
        "routeKey",
        "stage",
    }
)


def check_mapping_template(template: str) -> str:
    """A MOCK integration's template, if the devserver renders it as API Gateway would:
    only ``$context.<name>`` references, no other VTL (``#set``, ``$input``, ``$util``)."""
    names = _TEMPLATE_REFERENCE.findall(template)
    rest = _TEMPLATE_REFERENCE.sub("", template)
    unknown = sorted(set(names) - _TEMPLATE_CONTEXT)
    if unknown or "$" in rest or "#" in rest:
        raise TemplateError(
            f"mapping template {template!r}: the devserver renders only $context.<name> "
            f"({', '.join(sorted(_TEMPLATE_CONTEXT))})"
        )
    return template


def render_mapping_template(template: str, context: dict[str, Any]) -> str:
    return _TEMPLATE_REFERENCE.sub(lambda m: str(context.get(m.group(1), "")), template)


@dataclass
class WebSocketApiConfig:
    api_id: str
    stage: str
    selection_expression: str
    routes: dict[str, Route]

    @classmethod
    def from_template(cls, tpl: Template) -> WebSocketApiConfig | None:  # noqa: PLR0912
        api_ids = tpl.websocket_api_ids()
        if not api_ids:
            return None
        api_id = api_ids[0]
        if len(api_ids) > 1:
            log.warning("several WebSocket APIs in the template: serving %s only", api_id)

        def belongs(props: dict[str, Any]) -> bool:
            return bool(tpl.resolve(props.get("ApiId")) == api_id)

        api_props = tpl.resolve(tpl.resource(api_id).get("Properties") or {})
        stage = "$default"
        for _, props in tpl.of_type("AWS::ApiGatewayV2::Stage"):
            if belongs(props):
                stage = str(tpl.resolve(props["StageName"]))
                break

        integrations: dict[str, str | None] = {}
        mock_responses: dict[str, str] = {}
        for lid, props in tpl.of_type("AWS::ApiGatewayV2::Integration"):
            if belongs(props) and str(tpl.resolve(props.get("IntegrationType"))) == "MOCK":
                integrations[lid] = None
                mock_responses[lid] = ""  # no integration response: nothing sent back
            elif belongs(props):
                uri = str(tpl.resolve(props.get("IntegrationUri", "")))
                integrations[lid] = tpl.function_by_arn(uri)
                if integrations[lid] is None:
                    log.warning("integration %s: no function of this template in %s", lid, uri)

        authorizers: dict[str, tuple[str | None, list[str]]] = {}
        for lid, props in tpl.of_type("AWS::ApiGatewayV2::Authorizer"):
            if belongs(props):
                resolved = tpl.resolve(props)
                sources = resolved.get("IdentitySource") or []
                authorizers[lid] = (
                    tpl.function_by_arn(str(resolved.get("AuthorizerUri", ""))),
                    [sources] if isinstance(sources, str) else list(sources),
                )

        for _, props in tpl.of_type("AWS::ApiGatewayV2::IntegrationResponse"):
            resolved = tpl.resolve(props)
            integration_id = str(resolved.get("IntegrationId"))
            if (
                belongs(props)
                and integration_id in mock_responses
                and resolved.get("IntegrationResponseKey") == "$default"
            ):
                templates = resolved.get("ResponseTemplates") or {}
                mock_responses[integration_id] = check_mapping_template(
                    str(templates.get("$default", ""))
                )

        with_response = {
            str(tpl.resolve(props.get("RouteId")))
            for _, props in tpl.of_type("AWS::ApiGatewayV2::RouteResponse")
            if belongs(props)
        }

        routes: dict[str, Route] = {}
        for lid, props in tpl.of_type("AWS::ApiGatewayV2::Route"):
            if not belongs(props):
                continue
            resolved = tpl.resolve(props)
            target = str(resolved.get("Target", ""))
            integration = target.removeprefix("integrations/")
            route = Route(
                key=str(resolved["RouteKey"]),
                function=integrations.get(integration),
                has_response=lid in with_response,
                mock_response=mock_responses.get(integration),
            )
            if str(resolved.get("AuthorizationType", "NONE")).upper() == "CUSTOM":
                auth_id = str(resolved.get("AuthorizerId"))
                if auth_id not in authorizers:
                    raise TemplateError(f"route {lid}: unknown authorizer {auth_id}")
                route.authorizer, route.identity_sources = authorizers[auth_id]
            routes[route.key] = route
        return cls(
            api_id=api_id,
            stage=stage,
            selection_expression=str(
                api_props.get("RouteSelectionExpression", "$request.body.action")
            ),
            routes=routes,
        )

    def select_route(self, body: str) -> Route | None:
        """API Gateway route selection for a message body."""
        prefix = "$request.body."
        if self.selection_expression.startswith(prefix):
            try:
                value: Any = json.loads(body)
            except (ValueError, RecursionError):  # 50,000 "[" is no route, not a crash
                value = None
            for part in self.selection_expression[len(prefix) :].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, str) and value in self.routes and not value.startswith("$"):
                return self.routes[value]
        return self.routes.get("$default")


@dataclass
class Connection:
    id: str
    ws: web.WebSocketResponse
    connected_at: int
    source_ip: str
    user_agent: str
    authorizer: dict[str, Any] | None
    last_active: int = 0
    closing_code: int | None = None
    closing_reason: str = ""
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def open(self) -> bool:
        return not self.ws.closed and self.closing_code is None

    async def send(self, data: str | bytes) -> None:
        async with self.send_lock:
            if isinstance(data, bytes):
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_str(data)
        self.last_active = now_ms()

    async def close(self, code: int, reason: str) -> None:
        if self.closing_code is None:
            self.closing_code, self.closing_reason = code, reason
        await self.ws.close(code=code, message=reason.encode())


class WebSocketApi:
    """The WebSocket endpoint `/<stage>` and its connection registry."""

    def __init__(
        self,
        config: WebSocketApiConfig,
        pools: WorkerPools,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        max_connection_seconds: float = MAX_CONNECTION_SECONDS,
    ) -> None:
        self.config = config
        self.pools = pools
        self.idle_timeout = idle_timeout
        self.max_connection_seconds = max_connection_seconds
        self.connections: dict[str, Connection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._disconnects: set[asyncio.Task[Any]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"/{self.config.stage}", self.handle)

    # ------------------------------------------------------------------ events
    def _context(
        self, request: web.Request, route_key: str, event_type: str, conn_id: str, connected_at: int
    ) -> dict[str, Any]:
        epoch = now_ms()
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": new_id(),
            "requestTime": request_time(epoch),
            "messageDirection": "IN",
            "stage": self.config.stage,
            "connectedAt": connected_at,
            "requestTimeEpoch": epoch,
            "identity": {
                "sourceIp": request.remote or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": new_id(),
            "domainName": request.host,
            "connectionId": conn_id,
            "apiId": self.config.api_id,
        }

    @staticmethod
    def _header_maps(request: web.Request) -> dict[str, Any]:
        headers: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers[name] = value
            multi.setdefault(name, []).append(value)
        forwarded = {
            "X-Forwarded-For": request.remote or "127.0.0.1",
            "X-Forwarded-Port": str(request.url.port or ""),
            "X-Forwarded-Proto": request.scheme,
        }
        for name, value in forwarded.items():
            headers.setdefault(name, value)
            multi.setdefault(name, [value])
        query = {k: request.query.getall(k)[-1] for k in request.query}
        multi_query = {k: list(request.query.getall(k)) for k in request.query}
        return {
            "headers": headers,
            "multiValueHeaders": multi,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
        }

    # ------------------------------------------------------------------ handshake
    async def handle(self, request: web.Request) -> web.StreamResponse:
        # aiohttp refuses a message of max_msg_size bytes; API Gateway accepts 128 KB itself.
        # No permessage-deflate (API Gateway documents no compression extension): a frame
        # here is the size it is on the wire, the size API Gateway's quotas limit.
        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE_BYTES + 1, timeout=2.0, autoping=True, compress=False
        )
        if not ws.can_prepare(request).ok:
            return _json(426, {"message": "Upgrade Required"})
        started = time.monotonic()
        conn_id = new_id()
        connected_at = now_ms()
        connect = self.config.routes.get("$connect")
        authorizer_ctx: dict[str, Any] | None = None

        if connect is not None and connect.authorizer is not None:
            refusal, authorizer_ctx, why = await self._authorize(
                request, connect, conn_id, connected_at
            )
            if refusal is not None:
                log.info(
                    "CONNECT    refused %d by the authorizer (%s) %.0f ms",
                    refusal.status,
                    why,
                    (time.monotonic() - started) * 1000,
                )
                return refusal

        if connect is not None and connect.function is not None:
            event = {
                **self._header_maps(request),
                "requestContext": {
                    **self._context(request, "$connect", "CONNECT", conn_id, connected_at),
                    **({"authorizer": authorizer_ctx} if authorizer_ctx is not None else {}),
                },
                "isBase64Encoded": False,
            }
            result = await self.pools.invoke(connect.function, event)
            status = _status_of(result)
            if not 200 <= status < 300:
                log.info(
                    "CONNECT    %s refused %d by $connect (%s) %.0f ms",
                    conn_id,
                    status,
                    result.error_message or "statusCode",
                    (time.monotonic() - started) * 1000,
                )
                # A failed $connect never gets a $disconnect.
                return _json(
                    status, {"message": "Forbidden" if status == 403 else "Internal server error"}
                )

        await ws.prepare(request)
        conn = Connection(
            id=conn_id,
            ws=ws,
            connected_at=connected_at,
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
            authorizer=authorizer_ctx,
            last_active=now_ms(),
        )
        self.connections[conn_id] = conn
        principal = (authorizer_ctx or {}).get("principalId", "-")
        log.info(
            "CONNECT    %s user=%s %.0f ms", conn_id, principal, (time.monotonic() - started) * 1000
        )
        watchdog = asyncio.create_task(self._watchdog(conn))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    conn.last_active = now_ms()
                    body = (
                        msg.data if isinstance(msg.data, str) else msg.data.decode(errors="replace")
                    )
                    self._spawn(self._message(request, conn, body))
                elif msg.type == WSMsgType.ERROR:
                    if isinstance(msg.data, WebSocketError) and conn.closing_code is None:
                        # aiohttp closed with the error's code (1009 for a frame or message
                        # over the limits): $disconnect and the log say that, not 1006.
                        conn.closing_code = msg.data.code
                    log.info("CONNECTION %s closed: %s", conn_id, msg.data)
                    break
        finally:
            watchdog.cancel()
            self.connections.pop(conn_id, None)
            code = conn.closing_code or ws.close_code or WSCloseCode.ABNORMAL_CLOSURE
            reason = conn.closing_reason or _close_reason(code)
            task = asyncio.create_task(self._disconnect(request, conn, int(code), reason))
            self._disconnects.add(task)
            task.add_done_callback(self._disconnects.discard)
        return ws

    async def _authorize(
        self, request: web.Request, route: Route, conn_id: str, connected_at: int
    ) -> tuple[web.Response | None, dict[str, Any] | None, str]:
        """(refusal or None, the authorizer's context, why) -- ``why`` for the one log line."""
        # Identity sources are checked by API Gateway itself: missing -> 401, no Lambda call.
        for source in route.identity_sources:
            if not _identity_value(request, source):
                return _json(401, {"message": "Unauthorized"}), None, f"no {source}"
        method_arn = (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.config.api_id}/"
            f"{self.config.stage}/$connect"
        )
        event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            **self._header_maps(request),
            "stageVariables": {},
            "requestContext": self._context(request, "$connect", "CONNECT", conn_id, connected_at),
        }
        assert route.authorizer is not None
        started = time.monotonic()
        result = await self.pools.invoke(route.authorizer, event)
        latency = int((time.monotonic() - started) * 1000)
        if not result.ok or not isinstance(result.payload, dict):
            # Exception("Unauthorized") from the authorizer is API Gateway's 401 contract.
            return (
                _json(401, {"message": "Unauthorized"}),
                None,
                result.error_message or "no policy",
            )
        policy = result.payload
        if _policy_effect(policy.get("policyDocument"), method_arn) != "Allow":
            return _json(403, {"message": "Forbidden"}), None, "Deny"
        ctx = {str(k): v for k, v in (policy.get("context") or {}).items()}
        ctx["principalId"] = policy.get("principalId")
        ctx["integrationLatency"] = latency
        return None, ctx, ""

    # ------------------------------------------------------------------ messages
    async def _message(self, request: web.Request, conn: Connection, body: str) -> None:
        started = time.monotonic()
        route = self.config.select_route(body)
        context = self._context(request, "", "MESSAGE", conn.id, conn.connected_at)
        if route is None:
            await _safe_send(
                conn,
                json.dumps(
                    {
                        "message": "Forbidden",
                        "connectionId": conn.id,
                        "requestId": context["requestId"],
                    }
                ),
            )
            return
        context["routeKey"] = route.key
        context["messageId"] = new_id()
        if route.mock_response is not None:  # API Gateway answers itself: no Lambda
            if route.has_response and route.mock_response:
                await _safe_send(conn, render_mapping_template(route.mock_response, context))
            log.info("ROUTE      %s %s -> MOCK", conn.id, route.key)
            return
        if route.function is None:
            return
        if conn.authorizer is not None:
            context["authorizer"] = conn.authorizer
        event = {"requestContext": context, "body": body, "isBase64Encoded": False}
        result = await self.pools.invoke(route.function, event)
        log.info(
            "ROUTE      %s %s -> %s %s %.0f ms",
            conn.id,
            route.key,
            route.function,
            "ok" if result.ok else result.error_message,
            (time.monotonic() - started) * 1000,
        )
        if not result.ok:
            await _safe_send(
                conn,
                json.dumps(
                    {
                        "message": "Internal server error",
                        "connectionId": conn.id,
                        "requestId": context["requestId"],
                    }
                ),
            )
            return
        if route.has_response:
            reply = _response_body(result.payload)
            if reply is not None:
                await _safe_send(conn, reply)

    async def _watchdog(self, conn: Connection) -> None:
        deadline = conn.connected_at / 1000 + self.max_connection_seconds
        while conn.open:
            idle_deadline = conn.last_active / 1000 + self.idle_timeout
            now = time.time()
            if now >= deadline:
                await conn.close(WSCloseCode.GOING_AWAY, "Going away")
                return
            if now >= idle_deadline:
                await conn.close(WSCloseCode.GOING_AWAY, "Going away")
                return
            await asyncio.sleep(min(deadline, idle_deadline) - now + 0.01)

    async def _disconnect(
        self, request: web.Request, conn: Connection, code: int, reason: str
    ) -> None:
        route = self.config.routes.get("$disconnect")
        started = time.monotonic()
        if route is None or route.function is None:
            log.info("DISCONNECT %s %d", conn.id, code)
            return
        context = self._context(request, "$disconnect", "DISCONNECT", conn.id, conn.connected_at)
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        if conn.authorizer is not None:
            context["authorizer"] = conn.authorizer
        event = {
            "headers": {"Host": request.host, "x-api-key": "", "X-Forwarded-For": ""},
            "multiValueHeaders": {"Host": [request.host]},
            "requestContext": context,
            "isBase64Encoded": False,
        }
        result = await self.pools.invoke(route.function, event)
        log.info(
            "DISCONNECT %s %d %s %.0f ms",
            conn.id,
            code,
            "ok" if result.ok else result.error_message,
            (time.monotonic() - started) * 1000,
        )

    def close_soon(self, conn: Connection, code: int, reason: str) -> None:
        """Mark closed now (later management calls get 410), finish the close handshake
        in the background so the caller is not held by it."""
        if conn.closing_code is None:
            conn.closing_code, conn.closing_reason = code, reason
        self._spawn(conn.ws.close(code=code, message=reason.encode()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close_all(self, timeout: float = 10.0) -> None:
        """Server shutdown: close every socket (1001), then wait for their $disconnects."""
        conns = list(self.connections.values())
        await asyncio.gather(
            *(c.close(WSCloseCode.GOING_AWAY, "Going away") for c in conns),
            return_exceptions=True,
        )
        deadline = time.monotonic() + timeout
        while (self.connections or self._disconnects) and time.monotonic() < deadline:
            pending = list(self._disconnects)
            if pending:
                await asyncio.wait(pending, timeout=max(0.1, deadline - time.monotonic()))
            else:
                await asyncio.sleep(0.05)
        for task in list(self._tasks):
            task.cancel()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _status_of(result: InvocationResult) -> int:
    if not result.ok:
        return 500
    payload = result.payload
    if isinstance(payload, dict) and "statusCode" in payload:
        try:
            return int(payload["statusCode"])
        except (TypeError, ValueError):
            return 500
    return 200


def _response_body(payload: Any) -> str | None:
    if isinstance(payload, dict):
        body = payload.get("body")
        if body is None:
            return None
        return body if isinstance(body, str) else json.dumps(body)
    if payload is None:
        return None
    return payload if isinstance(payload, str) else json.dumps(payload)


def _identity_value(request: web.Request, source: str) -> str | None:
    if source.startswith("route.request.querystring."):
        return request.query.get(source.removeprefix("route.request.querystring."))
    if source.startswith("route.request.header."):
        return request.headers.get(source.removeprefix("route.request.header."))
    return "stage-or-context-variable"  # not checked locally


def _policy_effect(document: Any, method_arn: str) -> str:
    """Deny wins over Allow; no matching statement is an implicit Deny (403)."""
    import fnmatch

    if not isinstance(document, dict):
        return "Deny"
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    effect = "Deny"
    for statement in statements:
        actions = statement.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        resources = statement.get("Resource") or []
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        if statement.get("Effect") == "Allow":
            effect = "Allow"
    return effect


def _close_reason(code: int) -> str:
    return {
        1000: "Normal closure",
        1001: "Going away",
        1006: "Abnormal closure",
        1009: "Message too big",
    }.get(code, "")


async def _safe_send(conn: Connection, data: str) -> None:
    if not conn.open:
        return
    with contextlib.suppress(ConnectionError, RuntimeError):
        await conn.send(data)
