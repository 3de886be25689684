"""Typed errors. A reply with ``ok: false`` raises the subclass of :class:`ServerError`
for its ``error.code`` (``except Forbidden:``, or ``except ServerError as e: e.code``);
problems on the client's side of the wire have their own classes."""

from __future__ import annotations

from typing import Any


class SwitchboardClientError(Exception):
    """Base of every error this package raises."""


class ServerError(SwitchboardClientError):
    """The server answered a request with an error reply."""

    code: str = "internal"

    def __init__(
        self, message: str, *, action: str | None = None, details: Any = None, code: str = ""
    ) -> None:
        super().__init__(f"{action}: {message}" if action else message)
        self.message = message
        self.action = action
        self.details = details
        if code:
            self.code = code


class BadRequest(ServerError):
    code = "bad_request"


class Unauthorized(ServerError):
    code = "unauthorized"


class TokenExpired(ServerError):
    code = "token_expired"


class Forbidden(ServerError):
    code = "forbidden"


class NotFound(ServerError):
    code = "not_found"


class Conflict(ServerError):
    code = "conflict"


class PayloadTooLarge(ServerError):
    code = "payload_too_large"


class RateLimited(ServerError):
    code = "rate_limited"

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked us to wait, when it said (``details.retryAfterMs``)."""
        if isinstance(self.details, dict):
            value = self.details.get("retryAfterMs")
            if isinstance(value, int | float) and value >= 0:
                return float(value) / 1000
        return None


class UnknownAction(ServerError):
    code = "unknown_action"


class InternalError(ServerError):
    code = "internal"


ERRORS_BY_CODE: dict[str, type[ServerError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        TokenExpired,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        UnknownAction,
        InternalError,
    )
}


def error_from_reply(action: str, error: Any) -> ServerError:
    """The exception for a reply's ``error`` object (an unknown code -> ServerError with
    that code, so a newer server never crashes an older client)."""
    body = error if isinstance(error, dict) else {}
    code = str(body.get("code") or "internal")
    message = str(body.get("message") or code)
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        return ServerError(message, action=action, details=body.get("details"), code=code)
    return cls(message, action=action, details=body.get("details"))


class GatewayError(ServerError):
    """API Gateway's own error frame (``{"message": "Internal server error",
    "connectionId", "requestId"}`` when an integration failed): it names no request, so
    every request waiting at that moment gets it -- each may or may not have been
    processed (``send_message`` retries it safely)."""

    code = "gateway_error"


class RequestTimeout(SwitchboardClientError, TimeoutError):
    """No reply in time. The request may or may not have been processed."""

    code = "timeout"


class ConnectionLost(SwitchboardClientError, ConnectionError):
    """The connection closed while the request waited for its reply: it may or may not
    have been processed (``send_message`` retries it safely with its clientMessageId)."""

    code = "connection_lost"


class ClientClosed(SwitchboardClientError):
    """The client was closed (by ``close()`` or after a fatal error)."""

    code = "closed"


class UnexpectedReply(SwitchboardClientError):
    """A reply whose data does not match the action's model (switchboard_client.wire): the
    server and this client disagree on the protocol."""


class UploadFailed(SwitchboardClientError):
    """The server rejected the stored object (an ``upload:error`` push: ``code`` is e.g.
    ``size_mismatch``); it was deleted."""

    def __init__(self, upload_id: str, code: str, message: str) -> None:
        super().__init__(f"upload {upload_id} failed: {code}: {message}")
        self.upload_id = upload_id
        self.code = code


class AuthenticationFailed(SwitchboardClientError):
    """The handshake was refused (HTTP 401/403): the token is missing, invalid or expired,
    and no token provider gave a better one. Not retried."""

    code = "authentication_failed"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"handshake refused with HTTP {status}: {message}")
        self.status = status
