"""The local stack's e-mail log: what the functions sent through SES (moto runs in the
devserver's process). Every e-mail is logged on the console as it is sent, and
`GET /__devserver/emails` (HTTP port) lists them, oldest first."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("devserver.emails")


def _ses_backends() -> list[Any]:
    from moto.ses.models import ses_backends

    backends: list[Any] = []
    for account in list(ses_backends.keys()):
        backends.extend(list(ses_backends[account].values()))
    return backends


def _email_wire(message: Any) -> dict[str, Any]:
    destinations = getattr(message, "destinations", None)
    if isinstance(destinations, dict):
        to = list(destinations.get("ToAddresses") or [])
        cc = list(destinations.get("CcAddresses") or [])
        bcc = list(destinations.get("BccAddresses") or [])
    else:  # raw e-mails carry a flat list
        to, cc, bcc = list(destinations or []), [], []
    raw = getattr(message, "raw_data", None)
    return {
        "id": getattr(message, "id", ""),
        "from": getattr(message, "source", ""),
        "to": to,
        "cc": cc,
        "bcc": bcc,
        "subject": getattr(message, "subject", None) or "",
        "body": getattr(message, "body", None) or raw or "",
    }


def sent_emails() -> list[dict[str, Any]]:
    """Every e-mail sent through moto's SES (v1 and v2 share the backend), oldest first."""
    return [_email_wire(m) for backend in _ses_backends() for m in list(backend.sent_messages)]


def install_email_log() -> None:
    """Logs one console line per e-mail moto's SES accepts (idempotent)."""
    from moto.ses.models import SESBackend

    for name in ("send_email", "send_raw_email", "send_templated_email"):
        original = getattr(SESBackend, name, None)
        if original is None or getattr(original, "_switchboard_logged", False):
            continue
        setattr(SESBackend, name, _logged(original))


def _logged(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        message = method(*args, **kwargs)
        with_fields = _email_wire(message)
        log.info(
            "EMAIL    to=%s subject=%r (GET /__devserver/emails)",
            ",".join(with_fields["to"]) or "-",
            with_fields["subject"],
        )
        return message

    wrapper._switchboard_logged = True  # type: ignore[attr-defined]
    return wrapper


def add_email_routes(app: web.Application) -> None:
    """`/__devserver/emails` (GET)."""

    async def emails(_: web.Request) -> web.Response:
        return web.json_response(sent_emails())

    app.router.add_get("/__devserver/emails", emails)
