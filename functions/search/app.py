"""message:search: full-text search over the conversations the caller is a member of
(switchboard/search/, design in docs/search.md). One handler, one call into SearchService."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.config import SearchSettings
from switchboard.observability import logger
from switchboard.router import Request, WebSocketRouter
from switchboard.wire import search as wire

settings = SearchSettings.from_env()
service = services.search(settings)
router = WebSocketRouter(wire.REPLIES, refreshed_token_exp=services.refreshed_token_exp(settings))


@router.action("message:search", wire.MessageSearch)
def search(request: Request[wire.MessageSearch]) -> wire.SearchResult:
    return service.search(request.caller, request.data)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return router.resolve(event)
