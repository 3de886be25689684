"""REQUEST authorizer for $connect: verifies the JWT passed as ?token=.

Refusals raise ``Exception("Unauthorized")``, which API Gateway turns into a 401 at the
handshake; nothing is written for a refused connection. A token issued before the user's
sessions were revoked (``admin:revoke``) is refused like a forged one.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponseWebSocket,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.auth import InvalidToken
from switchboard.config import AuthorizerSettings
from switchboard.observability import logger

authorizer = services.authorizer(AuthorizerSettings.from_env())


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    try:
        identity = authorizer.verify((request.query_string_parameters or {}).get("token"))
    except InvalidToken as exc:
        logger.info("connection refused", extra={"reason": exc.reason})
        raise Exception("Unauthorized") from None  # noqa: TRY002 - the exact text API Gateway maps to 401
    response = APIGatewayAuthorizerResponseWebSocket.from_route_arn(
        request.method_arn,
        principal_id=identity.user_id,
        context={
            "userId": identity.user_id,
            "roles": ",".join(sorted(identity.roles)),
            "tokenExp": identity.expires_at,
            "tokenIat": identity.issued_at,
        },
    )
    response.allow_route("$connect")
    return response.asdict()
