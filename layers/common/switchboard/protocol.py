"""The wire protocol: frames as pydantic models (docs/protocol.md and the JSON Schema
are generated from these).

Client -> server: ``{"action": "message:send", "id": "r-17", "data": {...}}``.
Every request gets exactly one reply through the route response:
``{"type": "reply", "id": "r-17", "ok": true, "data": {...}}`` or
``{"type": "reply", "id": "r-17", "ok": false, "error": {"code", "message"}}``.
Server push: ``{"type": "<event>", "data": {...}}``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from switchboard.errors import ErrorCode

# API Gateway's limits, which the devserver enforces too.
MAX_MESSAGE_BYTES = 128 * 1024
MAX_FRAME_BYTES = 32 * 1024


class WireModel(BaseModel):
    """Base of every client-sent payload: unknown fields are refused, not ignored, so a
    typo in a field name is a clear ``bad_request`` instead of a silently dropped value."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class RequestFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(min_length=1, max_length=64)
    id: str | None = Field(default=None, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    code: ErrorCode
    message: str
    details: Any = None


class ReplyFrame(BaseModel):
    type: Literal["reply"] = "reply"
    id: str | None = None
    ok: bool
    data: Any = None
    error: ErrorBody | None = None


class PushFrame(BaseModel):
    type: str
    data: Any


class EmptyData(WireModel):
    """For actions that take no data."""


def reply_ok(request_id: str | None, data: Any) -> dict[str, Any]:
    return {"type": "reply", "id": request_id, "ok": True, "data": data}


def reply_error(
    request_id: str | None, code: ErrorCode, message: str, details: Any = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code.value, "message": message}
    if details is not None:
        error["details"] = details
    return {"type": "reply", "id": request_id, "ok": False, "error": error}


def push(event_type: str, data: Any) -> dict[str, Any]:
    return {"type": event_type, "data": data}


def to_json(frame: Any) -> str:
    """Replies and pushes leave as the same compact JSON (every byte is a billed frame)."""
    return json.dumps(frame, separators=(",", ":"), default=str)
