"""$connect, $disconnect, ping and $default (unknown actions, non-JSON frames)."""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard.config import ConnectionSettings
from switchboard.connections import close_connection, open_connection
from switchboard.dal.connections import ConnectionRepository
from switchboard.dal.users import UserRepository
from switchboard.observability import logger
from switchboard.protocol import EmptyData
from switchboard.router import Request, WebSocketEvent, WebSocketRouter

settings = ConnectionSettings.from_env()
connections = ConnectionRepository(
    settings.CONNECTIONS_TABLE,
    UserRepository(settings.USERS_TABLE),
    ttl_seconds=settings.CONNECTION_TTL_SECONDS,
)
router = WebSocketRouter()


@router.on_connect
def on_connect(event: WebSocketEvent) -> None:
    open_connection(connections, event)


@router.on_disconnect
def on_disconnect(event: WebSocketEvent) -> None:
    close_connection(connections, event)


@router.action("ping", EmptyData)
def ping(request: Request[EmptyData]) -> dict[str, Any]:
    # pid tells which execution environment answered (the devserver runs several).
    return {"pong": True, "serverTime": int(time.time() * 1000), "pid": os.getpid()}


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return router.resolve(event)
