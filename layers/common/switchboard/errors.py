"""Domain errors. Each carries its wire error code; the router maps them to reply frames
in one place (never by matching message text)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - an error code, not a secret
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_ACTION = "unknown_action"
    INTERNAL = "internal"


class SwitchboardError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        # Set when the error is raised before the frame's id could be read normally.
        self.request_id: str | None = None


class BadRequest(SwitchboardError):
    code = ErrorCode.BAD_REQUEST


class Unauthorized(SwitchboardError):
    code = ErrorCode.UNAUTHORIZED


class TokenExpired(SwitchboardError):
    code = ErrorCode.TOKEN_EXPIRED


class Forbidden(SwitchboardError):
    code = ErrorCode.FORBIDDEN


class NotFound(SwitchboardError):
    code = ErrorCode.NOT_FOUND


class Conflict(SwitchboardError):
    code = ErrorCode.CONFLICT


class PayloadTooLarge(SwitchboardError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class RateLimited(SwitchboardError):
    code = ErrorCode.RATE_LIMITED


class UnknownAction(SwitchboardError):
    code = ErrorCode.UNKNOWN_ACTION


def conversation_not_found() -> NotFound:
    """The one answer for a conversation the caller may not know of: one that does not
    exist, and one they are not (and never were) a member of. The same code, words and
    (no) details, so naming a conversation - the 1:1 id anyone can derive from two user
    ids (dal/conversations.direct_id) included - tells a non-member nothing: not whether
    it exists, nor who is in it. Nothing of the request is echoed: one reply, byte for
    byte but the request id, whichever id was named."""
    return NotFound("conversation not found")
