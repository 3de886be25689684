"""A small WebSocket router in the style of Powertools' ``APIGatewayRestResolver``:
action -> handler, with every error mapped to a typed reply frame in one place.

Powertools has no WebSocket resolver. Its Parser has API Gateway WebSocket event models,
but they drop the authorizer context and importing them costs ~0.1 s of cold start more
than the few fields below (measured on this project's machine), so the event is parsed
with the minimal models here.

Each function registers the actions it serves; replies travel back through the route
response (the Lambda's return value), never through an extra PostToConnection call.
"""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from switchboard.errors import (
    BadRequest,
    ErrorCode,
    SwitchboardError,
    TokenExpired,
    UnknownAction,
)
from switchboard.observability import logger
from switchboard.protocol import (
    MAX_NESTING_DEPTH,
    RequestFrame,
    WireData,
    WireMismatch,
    nesting_depth,
    reply_error,
    reply_ok,
    to_json,
)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=WireData)


class AuthorizerContext(BaseModel):
    """What the $connect authorizer put in its ``context``; API Gateway hands it to every
    later route of the connection (values may arrive as strings)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    user_id: str = Field(alias="userId", min_length=1)
    roles: frozenset[str] = frozenset()
    token_exp: int = Field(default=0, alias="tokenExp")
    token_iat: int = Field(default=0, alias="tokenIat")

    @field_validator("roles", mode="before")
    @classmethod
    def _split_roles(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(r for r in value.split(",") if r)
        return value


class RequestContext(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    route_key: str = Field(alias="routeKey")
    event_type: str = Field(alias="eventType")
    connection_id: str = Field(alias="connectionId")
    domain_name: str = Field(default="", alias="domainName")
    stage: str = ""
    request_id: str = Field(default="", alias="requestId")
    request_time_epoch: int = Field(default=0, alias="requestTimeEpoch")
    connected_at: int = Field(default=0, alias="connectedAt")
    identity: dict[str, Any] = Field(default_factory=dict)
    authorizer: AuthorizerContext | None = None


class WebSocketEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    request_context: RequestContext = Field(alias="requestContext")
    body: str | None = None
    # $connect only: the URL's query (``token``, ``backlog``)
    query: dict[str, str] | None = Field(default=None, alias="queryStringParameters")
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated user behind a connection."""

    connection_id: str
    user_id: str
    roles: frozenset[str]
    token_exp: int

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True, slots=True)
class Request(Generic[M]):
    caller: Caller
    action: str
    request_id: str | None
    data: M
    context: RequestContext


@dataclass(frozen=True, slots=True)
class _Action:
    model: type[BaseModel]
    reply: type[WireData]
    handler: Callable[[Request[Any]], WireData]
    allow_expired_token: bool = False


# A lifecycle handler may return its own response (e.g. a 429 that refuses a $connect).
LifecycleHandler = Callable[[WebSocketEvent], dict[str, Any] | None]


class WebSocketRouter:
    """``refreshed_token_exp(connection_id)`` returns the expiry an ``auth:refresh`` stored
    for the connection (0 if none). The authorizer's context is fixed for the life of a
    connection, so the router asks only once that expiry has passed: a connection with a
    valid token costs no extra call.

    ``replies`` maps each action to the model of its reply's ``data`` (switchboard.wire):
    an action without one cannot be registered, and a handler that returns anything else
    is a bug, answered with ``internal``."""

    def __init__(
        self,
        replies: Mapping[str, type[WireData]],
        *,
        clock: Callable[[], float] = time.time,
        refreshed_token_exp: Callable[[str], int] | None = None,
    ) -> None:
        self._replies = replies
        self._actions: dict[str, _Action] = {}
        self._lifecycle: dict[str, LifecycleHandler] = {}
        self._clock = clock
        self._refreshed_token_exp = refreshed_token_exp

    # ------------------------------------------------------------------ registration
    def action(
        self, name: str, model: type[M], *, allow_expired_token: bool = False
    ) -> Callable[[Callable[[Request[M]], R]], Callable[[Request[M]], R]]:
        """``allow_expired_token`` is for ``auth:refresh`` alone: the one action a connection
        whose token has expired may still send."""
        if name not in self._replies:
            raise ValueError(f"action {name!r} has no reply model in switchboard.wire")

        def register(fn: Callable[[Request[M]], R]) -> Callable[[Request[M]], R]:
            if name in self._actions:
                raise ValueError(f"action {name!r} registered twice")
            self._actions[name] = _Action(model, self._replies[name], fn, allow_expired_token)
            return fn

        return register

    def on_connect(self, fn: LifecycleHandler) -> LifecycleHandler:
        self._lifecycle["$connect"] = fn
        return fn

    def on_disconnect(self, fn: LifecycleHandler) -> LifecycleHandler:
        self._lifecycle["$disconnect"] = fn
        return fn

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(self._actions)

    def reply_model(self, action: str) -> type[WireData]:
        return self._actions[action].reply

    # ------------------------------------------------------------------ dispatch
    def resolve(self, raw_event: dict[str, Any]) -> dict[str, Any]:
        """Lambda proxy response for one API Gateway WebSocket event."""
        event = WebSocketEvent.model_validate(raw_event)
        ctx = event.request_context
        route_key = ctx.route_key
        # Every line logged while handling this event names the user and the connection,
        # and one "handled" line per event gives its action, outcome and duration: what
        # the Logs Insights queries in template.yaml group by (docs/operations.md).
        keys = {"connectionId": ctx.connection_id, "route": route_key}
        if ctx.authorizer is not None:
            keys["userId"] = ctx.authorizer.user_id
        logger.append_keys(**keys)
        started = time.perf_counter()
        outcome: dict[str, Any] = {"action": route_key}
        try:
            lifecycle = self._lifecycle.get(route_key)
            if lifecycle is not None:
                return lifecycle(event) or {"statusCode": 200}
            if route_key in ("$connect", "$disconnect"):
                return {"statusCode": 200}
            reply = self._reply(event, outcome)
            return {"statusCode": 200, "body": to_json(reply)}
        finally:
            outcome["durationMs"] = round((time.perf_counter() - started) * 1000, 1)
            logger.info("handled", extra=outcome)
            logger.remove_keys(list(keys))

    def _reply(self, event: WebSocketEvent, outcome: dict[str, Any]) -> dict[str, Any]:
        request_id: str | None = None
        outcome["ok"] = False
        try:
            frame = _parse_frame(event.body)
            request_id = frame.id
            outcome["action"] = frame.action[:64]
            data = self._dispatch(event, frame)
            outcome["ok"] = True
            return reply_ok(request_id, data)
        except SwitchboardError as exc:
            request_id = request_id or exc.request_id
            outcome["code"] = exc.code.value
            logger.info(
                "request refused",
                extra={"code": exc.code.value, "reason": exc.message, "id": request_id},
            )
            return reply_error(request_id, exc.code, exc.message, exc.details)
        except Exception:
            outcome["code"] = ErrorCode.INTERNAL.value
            logger.exception("unhandled error", extra={"id": request_id})
            return reply_error(request_id, ErrorCode.INTERNAL, "internal error")

    def _dispatch(self, event: WebSocketEvent, frame: RequestFrame) -> WireData:
        action = self._actions.get(frame.action)
        if action is None:
            raise UnknownAction(f"unknown action {frame.action[:64]!r}")
        caller = self._caller(event, check_expiry=not action.allow_expired_token)
        try:
            data = action.model.model_validate(frame.data)
        except ValidationError as exc:
            raise _bad_request(exc, prefix="data") from None
        result = action.handler(
            Request(caller, frame.action, frame.id, data, event.request_context)
        )
        if type(result) is not action.reply:
            raise WireMismatch(
                f"{frame.action} replied {type(result).__name__}, not {action.reply.__name__}"
            )
        return result

    def _caller(self, event: WebSocketEvent, *, check_expiry: bool = True) -> Caller:
        ctx = event.request_context
        auth = ctx.authorizer
        if auth is None:  # only possible if a route is misconfigured without $connect auth
            raise SwitchboardError("connection has no authorizer context")
        token_exp = auth.token_exp
        # No expiry in the context (0) fails closed: it counts as expired.
        if check_expiry and token_exp < self._clock():
            if self._refreshed_token_exp is not None:
                token_exp = max(token_exp, self._refreshed_token_exp(ctx.connection_id))
            if token_exp < self._clock():
                raise TokenExpired("the connection's token has expired; send auth:refresh")
        return Caller(ctx.connection_id, auth.user_id, auth.roles, token_exp)


def _parse_frame(body: str | None) -> RequestFrame:
    if not body:
        raise BadRequest("empty frame")
    if nesting_depth(body) > MAX_NESTING_DEPTH:
        raise BadRequest(f"frame is nested deeper than {MAX_NESTING_DEPTH} levels")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: see nesting_depth
        raise BadRequest("frame is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("frame must be a JSON object")
    try:
        frame = RequestFrame.model_validate(payload)
    except ValidationError as exc:
        request_id = payload.get("id")
        raise _bad_request(
            exc, request_id=request_id if isinstance(request_id, str) else None
        ) from None
    if "\\u" in body and _has_lone_surrogate(payload):
        # "\ud800" is valid JSON but no valid text: it could not be stored or sent on.
        error = BadRequest("frame contains an unpaired UTF-16 surrogate")
        error.request_id = frame.id
        raise error
    return frame


def _has_lone_surrogate(payload: Any) -> bool:
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _location_part(part: str | int) -> str:
    # Field names and list indices only: a dict key the client chose (message:sync's
    # cursors) is input, masked so that the reply never reflects it or grows with it.
    return str(part) if isinstance(part, int) or _NAME.fullmatch(part) else "*"


def _bad_request(
    exc: ValidationError, prefix: str = "", request_id: str | None = None
) -> SwitchboardError:
    # Only location and message go back: echoing the input could reflect hostile content.
    details = [
        {
            "field": ".".join([prefix] * bool(prefix) + [_location_part(p) for p in e["loc"][:8]]),
            "message": e["msg"][:200],
        }
        for e in exc.errors(include_url=False, include_input=False)[:10]
    ]
    error = BadRequest("invalid request", details=details)
    error.request_id = request_id[:128] if request_id else None
    return error
