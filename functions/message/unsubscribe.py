"""One-click unsubscribe (RFC 8058) for the ``List-Unsubscribe`` header of notification
mail: ``POST /api/unsubscribe?u=<userId>&t=<token>`` turns the user's e-mail off. ``GET``
only shows a button that posts (mail scanners and link previews fetch links; they must
not unsubscribe anyone). The token is random, made when the address was verified, and
compared by the write's own condition: no secret to hold, one DynamoDB call."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard.config import UnsubscribeSettings
from switchboard.dal.users import UserRepository
from switchboard.observability import logger

users = UserRepository(UnsubscribeSettings.from_env().USERS_TABLE)
app = APIGatewayHttpResolver()
MAX_FIELD = 256


def _page(status: int, text: str, form_action: str | None = None) -> Response[str]:
    button = (
        f'<form method="post" action="{html.escape(form_action)}">'
        '<button name="List-Unsubscribe" value="One-Click">Unsubscribe</button></form>'
        if form_action
        else ""
    )
    body = f"<!doctype html><title>Switchboard</title><p>{html.escape(text)}</p>{button}"
    return Response(status, "text/html; charset=utf-8", body)


def _link() -> tuple[str, str] | None:
    query = app.current_event.query_string_parameters or {}
    user_id, token = query.get("u", ""), query.get("t", "")
    if not user_id or not token or len(user_id) > MAX_FIELD or len(token) > MAX_FIELD:
        return None
    return user_id, token


@app.get("/api/unsubscribe")
def confirm() -> Response[str]:
    link = _link()
    if link is None:
        return _page(400, "This unsubscribe link is incomplete.")
    action = "/api/unsubscribe?" + urlencode({"u": link[0], "t": link[1]})
    return _page(200, "Stop e-mail notifications from Switchboard?", action)


@app.post("/api/unsubscribe")
def unsubscribe() -> Response[str]:
    link = _link()
    if link is None or not users.unsubscribe(*link):
        return _page(400, "This unsubscribe link is not valid (any more).")
    logger.info("unsubscribed from email", extra={"userId": link[0]})
    return _page(200, "Done: Switchboard will not e-mail you any more.")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
