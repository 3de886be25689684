"""$connect, $disconnect, ping, auth:refresh, admin:revoke and $default (unknown actions,
non-JSON frames)."""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.config import SessionSettings
from switchboard.connections import close_connection, open_connection
from switchboard.dal.connections import TokenRevoked, TooManyConnections, TooManyConnects
from switchboard.observability import logger
from switchboard.protocol import EmptyData
from switchboard.router import Request, WebSocketEvent, WebSocketRouter
from switchboard.wire import sessions as wire

sessions = services.sessions(SessionSettings.from_env())
connections = sessions.connections
router = WebSocketRouter(wire.REPLIES, refreshed_token_exp=connections.refreshed_token_exp)


@router.on_connect
def on_connect(event: WebSocketEvent) -> dict[str, Any] | None:
    try:
        open_connection(connections, event)
    except TooManyConnects:
        logger.info("connection refused: too many connects for the user this minute")
        return {"statusCode": 429}
    except TooManyConnections:
        logger.info("connection refused: too many connections for the user")
        return {"statusCode": 429}
    except TokenRevoked:
        logger.info("connection refused: token revoked while connecting")
        return {"statusCode": 401}
    return None


@router.on_disconnect
def on_disconnect(event: WebSocketEvent) -> None:
    close_connection(connections, event)


@router.action("ping", EmptyData)
def ping(request: Request[EmptyData]) -> wire.Pong:
    # pid tells which execution environment answered (the devserver runs several);
    # connectionId is the caller's own id, as operators and the management API know it.
    return wire.Pong(
        pong=True,
        serverTime=int(time.time() * 1000),
        pid=os.getpid(),
        connectionId=request.caller.connection_id,
    )


@router.action("auth:refresh", wire.AuthRefresh, allow_expired_token=True)
def refresh(request: Request[wire.AuthRefresh]) -> wire.TokenRefreshed:
    return sessions.refresh(request.caller, request.data.token)


@router.action("admin:revoke", wire.AdminRevoke)
def revoke(request: Request[wire.AdminRevoke]) -> wire.SessionsRevoked:
    return sessions.revoke(request.caller, request.data.userId)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return router.resolve(event)
