"""Thin ``call:*`` helpers (``client.calls``): the signaling actions of docs/protocol.md,
"Calls". The media itself (WebRTC) is the application's; this only carries SDP and ICE.
Pushes arrive as events: ``call:incoming``, ``call:answered``, ``call:ice-candidate``,
``call:ended``, ... (``client.events("call:incoming")``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol


class Requester(Protocol):
    async def request(
        self, action: str, data: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]: ...


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
    ) -> dict[str, Any]:
        """1:1 (``callee`` a user id, with the SDP ``offer`` ``{"type": "offer", "sdp"}``)
        or a group call (``callee`` a list; offers follow per pair after ``call:join``).
        Returns ``{"callId", "state": "ringing", "participants"}``."""
        data: dict[str, Any] = {"media": media}
        if isinstance(callee, str):
            data["calleeId"] = callee
        else:
            data["calleeIds"] = list(callee)
        if offer is not None:
            data["offer"] = dict(offer)
        if conversation_id is not None:
            data["conversationId"] = conversation_id
        return await self._client.request("call:initiate", data)

    async def answer(
        self, call_id: str, answer: Mapping[str, Any], *, to_user_id: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"callId": call_id, "answer": dict(answer)}
        if to_user_id is not None:
            data["toUserId"] = to_user_id
        return await self._client.request("call:answer", data)

    async def reject(self, call_id: str, reason: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"callId": call_id}
        if reason is not None:
            data["reason"] = reason
        return await self._client.request("call:reject", data)

    async def end(self, call_id: str) -> dict[str, Any]:
        return await self._client.request("call:end", {"callId": call_id})

    async def leave(self, call_id: str) -> dict[str, Any]:
        return await self._client.request("call:leave", {"callId": call_id})

    async def join(self, call_id: str) -> dict[str, Any]:
        return await self._client.request("call:join", {"callId": call_id})

    async def invite(self, call_id: str, user_ids: Iterable[str]) -> dict[str, Any]:
        return await self._client.request(
            "call:invite", {"callId": call_id, "userIds": list(user_ids)}
        )

    async def offer(
        self, call_id: str, offer: Mapping[str, Any], *, to_user_id: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"callId": call_id, "offer": dict(offer)}
        if to_user_id is not None:
            data["toUserId"] = to_user_id
        return await self._client.request("call:offer", data)

    async def ice_candidate(
        self, call_id: str, candidate: Mapping[str, Any], *, to_user_id: str | None = None
    ) -> dict[str, Any]:
        """``candidate`` is ``RTCIceCandidate.toJSON()`` (an empty ``candidate`` string
        marks the end of candidates)."""
        data: dict[str, Any] = {"callId": call_id, "candidate": dict(candidate)}
        if to_user_id is not None:
            data["toUserId"] = to_user_id
        return await self._client.request("call:ice-candidate", data)

    async def get_active(self) -> dict[str, Any] | None:
        """Your ringing or active call, or None."""
        call: dict[str, Any] | None = (await self._client.request("call:get-active")).get("call")
        return call

    async def ice_servers(
        self, *, call_id: str | None = None, callee_id: str | None = None
    ) -> dict[str, Any]:
        """``{"iceServers", "ttl", "expiresAt"}``: STUN, and TURN with short-lived REST
        credentials for a call (``call_id`` you are in, or ``callee_id`` you are about to
        call; with neither, STUN only)."""
        data: dict[str, Any] = {}
        if call_id is not None:
            data["callId"] = call_id
        if callee_id is not None:
            data["calleeId"] = callee_id
        return await self._client.request("call:ice-servers", data)
