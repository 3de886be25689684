"""Upload actions: presigned S3 uploads (PUT or multipart), confirmed parts with progress
pushes, complete, abort, and the upload's state. Each handler is one UploadService call.
(Pillow and the magic-bytes sniffer are the processor's: never imported here.)"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.config import UploadSettings
from switchboard.observability import logger
from switchboard.router import Request, WebSocketRouter
from switchboard.wire import uploads as wire

service = services.uploads(UploadSettings.from_env())
router = WebSocketRouter(
    wire.REPLIES, refreshed_token_exp=service.delivery.connections.refreshed_token_exp
)


@router.action("upload:start", wire.UploadStart)
def start(request: Request[wire.UploadStart]) -> wire.UploadStarted:
    return service.start(request.caller, request.data)


@router.action("upload:part-done", wire.PartDone)
def part_done(request: Request[wire.PartDone]) -> wire.PartConfirmed:
    return service.part_done(request.caller, request.data)


@router.action("upload:complete", wire.UploadComplete)
def complete(request: Request[wire.UploadComplete]) -> wire.UploadStateReply:
    return service.complete(request.caller, request.data)


@router.action("upload:abort", wire.UploadRef)
def abort(request: Request[wire.UploadRef]) -> wire.UploadStateReply:
    return service.abort(request.caller, request.data)


@router.action("upload:get", wire.UploadGet)
def get(request: Request[wire.UploadGet]) -> wire.UploadView:
    return service.get(request.caller, request.data)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return router.resolve(event)
