"""API Gateway HTTP API (payload format 2.0) for functions' `HttpApi` events, plus `web/`.

Routes come from every `Type: HttpApi` event of the template's functions (`Path` with
`{param}` and greedy `{proxy+}`, `Method` or `ANY`). Like API Gateway, the most specific
route wins: literal paths before parameterised ones, a method before ANY. Anything else
on the port is the `web/` folder (the demo app), and `/__devserver/workers` shows the
worker pools (which process served how many invocations); `/__devserver/faults` is fault
injection (devserver/faults.py), `/__devserver/emails` the SES e-mail log
(devserver/emails.py) and `/__devserver/effects?after=<seq>` the effects recorded since
(devserver/effects.py). The demo app signs in through `/__devserver/users` and
`/__devserver/token?user=alice` (a dev JWT and the WebSocket URL): local only, like
everything here.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from devserver import ACCOUNT_ID
from devserver.effects import EFFECTS
from devserver.emails import add_email_routes, install_email_log
from devserver.faults import add_fault_routes
from devserver.local_only import REFUSED, local_request
from devserver.template import FunctionSpec
from devserver.tokens import DEMO_USERS, mint
from devserver.websocket_api import new_id, now_ms
from devserver.workers import WorkerPools

__all__ = ["HttpApi", "HttpRoute"]

log = logging.getLogger("devserver.http")

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Allow-Methods": "GET,POST,PUT,PATCH,DELETE,OPTIONS",
}
_DEV_USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_DEV_PREFIX = "/__devserver/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _this_origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`/__devserver/` mints tokens for anyone (the demo admin too), shows every mail and
    code, and takes fault injection: for the demo page only, never for another site's page
    in the developer's browser (no CORS; a cross-site request, even a "simple" POST that
    needs no preflight, carries its Origin and is refused; so is a rebound Host)."""
    if request.path.startswith(_DEV_PREFIX):
        origin = request.headers.get("Origin")
        # Only a page of this very origin: the demo app (a page of another port, moto's
        # S3 for instance, has no business here).
        if not local_request(request.host, origin) or (
            origin is not None and urlsplit(origin).netloc != request.host
        ):
            return web.Response(body=REFUSED, status=403, content_type="application/json")
    return await handler(request)


@dataclass
class HttpRoute:
    method: str  # "GET" ... or "ANY"
    path: str  # template form: /api/analytics/{proxy+}
    function: str
    pattern: re.Pattern[str]
    params: list[str]

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, int, int]:
        literal = sum(1 for seg in self.path.split("/") if seg and not seg.startswith("{"))
        greedy = 1 if "+}" in self.path else 0
        return (-greedy, literal, 0 if self.method == "ANY" else 1)

    @classmethod
    def build(cls, method: str, path: str, function: str) -> HttpRoute:
        regex, params = "", []
        for segment in path.strip("/").split("/"):
            if not segment:
                continue
            match = re.fullmatch(r"\{([^}]+?)(\+?)\}", segment)
            if match and match.group(2):
                params.append(match.group(1))
                regex += f"/(?P<{_group(match.group(1))}>.+)"
            elif match:
                params.append(match.group(1))
                regex += f"/(?P<{_group(match.group(1))}>[^/]+)"
            else:
                regex += "/" + re.escape(segment)
        # DOTALL: a parameter may hold any decoded character, a newline too (API Gateway
        # hands such paths to the function, which answers for them).
        pattern = re.compile((regex or "/") + "/?", re.DOTALL)
        return cls(method.upper(), path, function, pattern, params)


def _group(name: str) -> str:
    return re.sub(r"\W", "_", name)


class HttpApi:
    def __init__(self, functions: list[FunctionSpec], pools: WorkerPools, web_root: Path) -> None:
        self.pools = pools
        self.web_root = web_root.resolve()
        self.routes: list[HttpRoute] = []
        for spec in functions:
            for event in spec.events.values():
                if event.get("Type") != "HttpApi":
                    continue
                props = event.get("Properties") or {}
                self.routes.append(
                    HttpRoute.build(
                        str(props.get("Method", "ANY")),
                        str(props.get("Path", "/{proxy+}")),
                        spec.logical_id,
                    )
                )
        self.routes.sort(key=lambda r: r.specificity, reverse=True)
        # The functions' WEBSOCKET_ENDPOINT is already localised to this devserver's
        # management URL (http://host:port/stage): the same place speaks WebSocket.
        endpoints = {f.environment.get("WEBSOCKET_ENDPOINT", "") for f in functions}
        endpoint = next((e for e in sorted(endpoints) if e.startswith("http://")), "")
        self.ws_url = "ws://" + endpoint.removeprefix("http://") if endpoint else ""

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(_this_origin_only)
        app.router.add_get("/__devserver/workers", self._workers)
        app.router.add_get("/__devserver/users", self._demo_users)
        app.router.add_get("/__devserver/token", self._dev_token)
        app.router.add_get("/__devserver/effects", self._effects)
        add_fault_routes(app)
        add_email_routes(app)
        install_email_log()
        app.router.add_route("*", "/{tail:(?s:.*)}", self.handle)

    async def _workers(self, _: web.Request) -> web.Response:
        return web.json_response(self.pools.stats())

    async def _effects(self, request: web.Request) -> web.Response:
        after = request.query.get("after", "0")
        if not after.isdigit():
            return web.json_response({"message": "after must be a sequence number"}, status=400)
        return web.json_response(EFFECTS.after(int(after)))

    async def _demo_users(self, _: web.Request) -> web.Response:
        users = [{"userId": user, "admin": admin} for user, admin in DEMO_USERS]
        return web.json_response({"users": users, "ws": self.ws_url})

    async def _dev_token(self, request: web.Request) -> web.Response:
        """A dev JWT for `?user=` (admin role for the demo admin only) and the WebSocket URL."""
        user = request.query.get("user", "")
        if not _DEV_USER_ID.fullmatch(user):
            return web.json_response(
                {"message": "give ?user= (1-64 of A-Z a-z 0-9 _ . @ -)"}, status=400
            )
        admin = dict(DEMO_USERS).get(user, False)
        ttl = 3600
        return web.json_response(
            {
                "userId": user,
                "admin": admin,
                "token": mint(user, admin=admin, ttl_seconds=ttl),
                "expiresIn": ttl,
                "ws": self.ws_url,
            },
            headers={"Cache-Control": "no-store"},
        )

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found and route.method in ("ANY", method):
                params = {name: unquote(found.group(_group(name))) for name in route.params}
                return route, params
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        matched = self.match(request.method, request.path)
        if matched is None:
            if request.method == "OPTIONS":
                return web.Response(status=204, headers=_CORS)
            if request.method in ("GET", "HEAD") and not request.path.startswith("/api/"):
                return self._static(request)
            return web.json_response({"message": "Not Found"}, status=404, headers=_CORS)
        route, params = matched
        started = time.monotonic()
        event = await self._event(request, route, params)
        result = await self.pools.invoke(route.function, event)
        log.info(
            "HTTP       %s %s -> %s %s %.0f ms",
            request.method,
            request.path_qs,
            route.function,
            "ok" if result.ok else result.error_message,
            (time.monotonic() - started) * 1000,
        )
        if not result.ok:
            return web.json_response({"message": "Internal Server Error"}, status=500)
        return _response(result.payload)

    async def _event(
        self, request: web.Request, route: HttpRoute, params: dict[str, str]
    ) -> dict[str, Any]:
        raw = await request.read()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            # HTTP API joins repeated headers with commas (payload 2.0), cookies go apart.
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
        query: dict[str, str] = {}
        for key in request.query:
            query[key] = ",".join(request.query.getall(key))
        content_type = headers.get("content-type", "")
        textual = content_type.startswith("text/") or any(
            t in content_type for t in ("json", "xml", "x-www-form-urlencoded", "javascript")
        )
        is_b64 = bool(raw) and not textual
        epoch = now_ms()
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string,
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": "local-http-api",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                    "sourceIp": request.remote or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": new_id(),
                "routeKey": route.route_key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch / 1000)),
                "timeEpoch": epoch,
            },
            "isBase64Encoded": is_b64,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if params:
            event["pathParameters"] = params
        if raw:
            event["body"] = base64.b64encode(raw).decode() if is_b64 else raw.decode()
        return event

    def _static(self, request: web.Request) -> web.StreamResponse:
        rel = request.path.lstrip("/") or "index.html"
        target = (self.web_root / rel).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(self.web_root) or not target.is_file():
            return web.json_response({"message": "Not Found"}, status=404)
        return web.FileResponse(target, headers={**_CORS, "Cache-Control": "no-store"})


def _response(payload: Any) -> web.Response:
    # Payload 2.0: a dict without statusCode (or any non-dict) is a 200 JSON body.
    if not isinstance(payload, dict) or "statusCode" not in payload:
        return web.Response(
            status=200,
            text=json.dumps(payload),
            content_type="application/json",
            headers=_CORS,
        )
    headers = {**_CORS, **{str(k): str(v) for k, v in (payload.get("headers") or {}).items()}}
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ",".join(str(v) for v in values)
    body = payload.get("body")
    data: bytes
    if body is None:
        data = b""
    elif payload.get("isBase64Encoded"):
        data = base64.b64decode(body)
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    response = web.Response(status=int(payload["statusCode"]), body=data, headers=headers)
    for cookie in payload.get("cookies") or []:
        response.headers.add("Set-Cookie", str(cookie))
    return response
