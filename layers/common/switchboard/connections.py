"""Connection lifecycle: what $connect and $disconnect do."""

from __future__ import annotations

import time

from switchboard.dal.connections import Connection, ConnectionRepository
from switchboard.observability import logger
from switchboard.router import WebSocketEvent


def open_connection(repository: ConnectionRepository, event: WebSocketEvent) -> Connection:
    ctx = event.request_context
    if ctx.authorizer is None:
        # $connect without the authorizer's context would be a template mistake; refusing
        # is safer than storing an anonymous connection.
        raise PermissionError("$connect reached without an authorizer context")
    connection = Connection(
        connection_id=ctx.connection_id,
        user_id=ctx.authorizer.user_id,
        connected_at=ctx.connected_at or ctx.request_time_epoch,
        token_exp=ctx.authorizer.token_exp,
        token_iat=ctx.authorizer.token_iat,
        roles=ctx.authorizer.roles,
        device=str(ctx.identity.get("userAgent") or ""),
        source_ip=str(ctx.identity.get("sourceIp") or ""),
        # The client takes its reconnect backlog as message:batch frames (backlog.py).
        backlog_batch=(event.query or {}).get("backlog") == "batch",
    )
    repository.put(connection)
    logger.info(
        "connected", extra={"connectionId": ctx.connection_id, "userId": connection.user_id}
    )
    return connection


def close_connection(repository: ConnectionRepository, event: WebSocketEvent) -> None:
    ctx = event.request_context
    if ctx.authorizer is None:
        return
    repository.delete(ctx.connection_id, ctx.authorizer.user_id, int(time.time() * 1000))
    logger.info(
        "disconnected", extra={"connectionId": ctx.connection_id, "userId": ctx.authorizer.user_id}
    )
