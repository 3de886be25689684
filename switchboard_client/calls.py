"""Thin ``call:*`` helpers (``client.calls``): the signaling actions of docs/protocol.md,
"Calls". The media itself (WebRTC) is the application's; this only carries SDP and ICE.
Pushes arrive as events: ``call:incoming``, ``call:answered``, ``call:ice-candidate``,
``call:ended``, ... (``client.events("call:incoming")``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, TypeVar

from switchboard_client import wire

T = TypeVar("T", bound=wire.WireModel)


class Requester(Protocol):
    async def call(
        self,
        model: type[T],
        action: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> T: ...


Media = Literal["audio", "video"]


class Calls:
    def __init__(self, client: Requester) -> None:
        self._client = client

    async def initiate(
        self,
        callee: str | Iterable[str],
        media: Media,
        offer: Mapping[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> wire.CallStarted:
        """1:1 (``callee`` a user id, with the SDP ``offer`` ``{"type": "offer", "sdp"}``)
        or a group call (``callee`` a list; offers follow per pair after ``call:join``).
        The reply's ``state`` is ``"ringing"``."""
        data: dict[str, Any] = {"media": media}
        if isinstance(callee, str):
            data["calleeId"] = callee
        else:
            data["calleeIds"] = list(callee)
        if offer is not None:
            data["offer"] = dict(offer)
        if conversation_id is not None:
            data["conversationId"] = conversation_id
        return await self._client.call(wire.CallStarted, "call:initiate", data)

    async def answer(
        self, call_id: str, answer: Mapping[str, Any], *, to_user_id: str | None = None
    ) -> wire.CallAnswerReply:
        data: dict[str, Any] = {"callId": call_id, "answer": dict(answer)}
        if to_user_id is not None:
            data["toUserId"] = to_user_id
        return await self._client.call(wire.CallAnswerReply, "call:answer", data)

    async def reject(self, call_id: str, reason: str | None = None) -> wire.CallStateReply:
        data: dict[str, Any] = {"callId": call_id}
        if reason is not None:
            data["reason"] = reason
        return await self._client.call(wire.CallStateReply, "call:reject", data)

    async def end(self, call_id: str) -> wire.CallStateReply:
        return await self._client.call(wire.CallStateReply, "call:end", {"callId": call_id})

    async def leave(self, call_id: str) -> wire.CallStateReply:
        return await self._client.call(wire.CallStateReply, "call:leave", {"callId": call_id})

    async def join(self, call_id: str) -> wire.CallStarted:
        return await self._client.call(wire.CallStarted, "call:join", {"callId": call_id})

    async def invite(self, call_id: str, user_ids: Iterable[str]) -> wire.CallInvited:
        return await self._client.call(
            wire.CallInvited, "call:invite", {"callId": call_id, "userIds": list(user_ids)}
        )

    async def offer(
        self, call_id: str, offer: Mapping[str, Any], *, to_user_id: str | None = None
    ) -> wire.CallRelayed:
        data: dict[str, Any] = {"callId": call_id, "offer": dict(offer)}
        if to_user_id is not None:
            data["toUserId"] = to_user_id
        return await self._client.call(wire.CallRelayed, "call:offer", data)

    async def ice_candidate(
        self, call_id: str, candidate: Mapping[str, Any], *, to_user_id: str | None = None
    ) -> wire.CallRelayed:
        """``candidate`` is ``RTCIceCandidate.toJSON()`` (an empty ``candidate`` string
        marks the end of candidates)."""
        data: dict[str, Any] = {"callId": call_id, "candidate": dict(candidate)}
        if to_user_id is not None:
            data["toUserId"] = to_user_id
        return await self._client.call(wire.CallRelayed, "call:ice-candidate", data)

    async def media(
        self,
        call_id: str,
        *,
        audio: bool | None = None,
        video: bool | None = None,
        screen: bool | None = None,
    ) -> wire.CallMediaReply:
        """What your in-call device sends now (microphone, camera, screen share): the
        others get a ``call:media`` push; ``get_active()`` shows everyone's state."""
        given = {"audio": audio, "video": video, "screen": screen}
        data: dict[str, Any] = {
            "callId": call_id,
            **{name: value for name, value in given.items() if value is not None},
        }
        return await self._client.call(wire.CallMediaReply, "call:media", data)

    async def recording(
        self, call_id: str, state: Literal["started", "stopped"]
    ) -> wire.CallRecordingReply:
        """Announce that you start or stop recording (everyone gets ``call:recording`` and
        the call's conversation a system entry); upload the recording afterwards with
        ``client.uploads.upload(..., purpose="recording", call_id=call_id)``."""
        return await self._client.call(
            wire.CallRecordingReply, "call:recording", {"callId": call_id, "state": state}
        )

    async def get_active(self) -> wire.CallView | None:
        """Your ringing or active call, or None."""
        return (await self._client.call(wire.ActiveCall, "call:get-active")).call

    async def ice_servers(
        self, *, call_id: str | None = None, callee_id: str | None = None
    ) -> wire.IceServers:
        """STUN, and TURN with short-lived REST credentials for a call (``call_id`` you are
        in, or ``callee_id`` you are about to call; with neither, STUN only): pass
        ``iceServers`` to the peer connection."""
        data: dict[str, Any] = {}
        if call_id is not None:
            data["callId"] = call_id
        if callee_id is not None:
            data["calleeId"] = callee_id
        return await self._client.call(wire.IceServers, "call:ice-servers", data)
