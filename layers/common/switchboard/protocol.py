"""The wire protocol: frames as pydantic models (docs/protocol.md and the JSON Schema
are generated from these).

Client -> server: ``{"action": "message:send", "id": "r-17", "data": {...}}``.
Every request gets exactly one reply through the route response:
``{"type": "reply", "id": "r-17", "ok": true, "data": {...}}`` or
``{"type": "reply", "id": "r-17", "ok": false, "error": {"code", "message"}}``.
Server push: ``{"type": "<event>", "data": {...}}``.
"""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

import json
import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from switchboard.errors import ErrorCode
from switchboard.limits import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, MAX_NESTING_DEPTH

__all__ = ["MAX_FRAME_BYTES", "MAX_MESSAGE_BYTES", "MAX_NESTING_DEPTH"]

T = TypeVar("T")

# A string (to its closing quote, or to the end of an unterminated one) or a bracket. The
# string never fails to match, so every character is looked at once: a pattern that must
# find the closing quote re-scans the rest of the body from every unmatched quote, and a
# 16 KB frame of escaped quotes took seconds (quadratic).
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def nesting_depth(body: str) -> int:
    """How deeply arrays and objects nest in ``body``, counted without decoding it: the
    json decoder recurses once per level, and 50,000 ``[`` raise RecursionError (the
    frame would get ``internal``, and any later ``json.dumps`` of it would fail too).
    0 when the frame has too few brackets to nest past the budget; the count stops as
    soon as it passes the budget. Linear in the body's length."""
    if body.count("[") + body.count("{") <= MAX_NESTING_DEPTH:
        return 0
    depth = deepest = 0
    for token in _STRING_OR_BRACKET.finditer(body):
        bracket = token.group()
        if bracket[0] == '"':
            continue
        depth += 1 if bracket in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_NESTING_DEPTH:
                break
    return deepest


def _not_nullable(schema: dict[str, Any]) -> None:
    # On the wire the field is absent rather than null: the schema says "optional", not
    # "may be null", so typed clients get `field?: T` instead of `field?: T | null`.
    variants = [v for v in schema.pop("anyOf", []) if v != {"type": "null"}]
    if len(variants) == 1:
        schema.update(variants[0])
    elif variants:
        schema["anyOf"] = variants
    schema.pop("default", None)


def _is_none(value: Any) -> bool:
    return value is None


# A field the server leaves out of a reply or push when it has no value (``None`` here).
Omitted = Annotated[T | None, Field(exclude_if=_is_none, json_schema_extra=_not_nullable)]


class WireModel(BaseModel):
    """Base of every client-sent payload: unknown fields are refused, not ignored, so a
    typo in a field name is a clear ``bad_request`` instead of a silently dropped value.

    ``defer_build``: a model's validator and serialiser are built when it is first used,
    not when its module is imported. A function imports every model of its features (the
    reply map needs the classes) but a request uses two or three of them, so a cold start
    builds only what the first request touches (docs/performance.md, section 1)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=False, defer_build=True
    )


class RequestFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(min_length=1, max_length=64)
    id: str | None = Field(default=None, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)


# The reply and push frames are written as dicts (reply_ok, reply_error, push): these
# models describe them for the generated schema and docs, and are built only there.
class ErrorBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    code: ErrorCode
    message: str
    details: Any = None


class ReplyFrame(BaseModel):
    model_config = ConfigDict(defer_build=True)

    type: Literal["reply"] = "reply"
    id: str | None = None
    ok: bool
    data: Any = None
    error: ErrorBody | None = None


class PushFrame(BaseModel):
    model_config = ConfigDict(defer_build=True)

    type: str
    data: Any


class EmptyData(WireModel):
    """For actions that take no data."""


class WireMismatch(Exception):
    """A reply or push that does not match its model: a bug on the server, never input."""


class WireData(BaseModel):
    """Base of every reply and push payload the server sends. Built by services, serialised
    by ``wire()``: fields in declaration order (the order clients have always seen),
    ``Omitted`` fields left out when empty, every other field present (``null`` if none).
    Built on first use (``defer_build``), as WireModel is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready payload, checked: it must validate against its own model again
        (this catches a field that is left out but required, or a value a client could not
        parse back). Measured here: ~2 us for a small reply, ~0.1-0.2 ms for a 14 KB page
        of 50 messages, small next to the DynamoDB calls behind it; so the check runs
        everywhere, production too, and a mismatch is a bug, answered with ``internal``
        rather than sent."""
        data = self.model_dump(mode="json")
        try:
            type(self).model_validate(data)
        except ValidationError as exc:
            raise WireMismatch(f"{type(self).__name__} does not round-trip: {exc}") from None
        return data


class PushData(WireData):
    """The ``data`` of a server push; ``TYPE`` is the push frame's ``type``."""

    TYPE: ClassVar[str]


def reply_ok(request_id: str | None, data: WireData) -> dict[str, Any]:
    return {"type": "reply", "id": request_id, "ok": True, "data": data.wire()}


def reply_error(
    request_id: str | None, code: ErrorCode, message: str, details: Any = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code.value, "message": message}
    if details is not None:
        error["details"] = details
    return {"type": "reply", "id": request_id, "ok": False, "error": error}


def push(data: PushData) -> dict[str, Any]:
    """A push frame: its type comes from the model, so a frame cannot carry another type's
    data."""
    return {"type": data.TYPE, "data": data.wire()}


def to_json(frame: Any) -> str:
    """Replies and pushes leave as the same compact JSON (every byte is a billed frame)."""
    return json.dumps(frame, separators=(",", ":"), default=str)
