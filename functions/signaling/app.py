"""call:* actions: WebRTC signaling and the call state machine. Each handler is one call
into CallService."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.config import SignalingSettings
from switchboard.observability import logger
from switchboard.protocol import EmptyData
from switchboard.router import Request, WebSocketRouter
from switchboard.wire import calls as wire

service = services.calls(SignalingSettings.from_env())
router = WebSocketRouter(
    wire.REPLIES, refreshed_token_exp=service.delivery.connections.refreshed_token_exp
)


@router.action("call:initiate", wire.CallInitiate)
def initiate(request: Request[wire.CallInitiate]) -> wire.CallStarted:
    return service.initiate(request.caller, request.data)


@router.action("call:answer", wire.CallAnswer)
def answer(request: Request[wire.CallAnswer]) -> wire.CallAnswerReply:
    return service.answer(request.caller, request.data)


@router.action("call:reject", wire.CallReject)
def reject(request: Request[wire.CallReject]) -> wire.CallStateReply:
    return service.reject(request.caller, request.data)


@router.action("call:end", wire.CallRef)
def end(request: Request[wire.CallRef]) -> wire.CallStateReply:
    return service.end(request.caller, request.data)


@router.action("call:leave", wire.CallRef)
def leave(request: Request[wire.CallRef]) -> wire.CallStateReply:
    return service.end(request.caller, request.data)


@router.action("call:join", wire.CallRef)
def join(request: Request[wire.CallRef]) -> wire.CallStarted:
    return service.join(request.caller, request.data)


@router.action("call:invite", wire.CallInvite)
def invite(request: Request[wire.CallInvite]) -> wire.CallInvited:
    return service.invite(request.caller, request.data)


@router.action("call:offer", wire.CallOffer)
def offer(request: Request[wire.CallOffer]) -> wire.CallRelayed:
    return service.relay_offer(request.caller, request.data)


@router.action("call:ice-candidate", wire.CallIceCandidate)
def ice_candidate(request: Request[wire.CallIceCandidate]) -> wire.CallRelayed:
    return service.relay_ice(request.caller, request.data)


@router.action("call:get-active", EmptyData)
def get_active(request: Request[EmptyData]) -> wire.ActiveCall:
    return service.get_active(request.caller)


@router.action("call:ice-servers", wire.IceServersFor)
def ice_servers(request: Request[wire.IceServersFor]) -> wire.IceServers:
    return service.ice_servers_for(request.caller, request.data)


@router.action("call:media", wire.CallMedia)
def media(request: Request[wire.CallMedia]) -> wire.CallMediaReply:
    return service.media(request.caller, request.data)


@router.action("call:recording", wire.CallRecording)
def recording(request: Request[wire.CallRecording]) -> wire.CallRecordingReply:
    return service.recording(request.caller, request.data)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return router.resolve(event)
