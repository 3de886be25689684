"""Consent and membership helpers (``client.membership``): message requests, leaving,
blocks, group members and roles (docs/protocol.md, "Consent and membership"). The pushes
(``conversation:request``, ``conversation:accepted``) arrive as typed events; membership
changes arrive as ``message:new`` whose ``system`` says what changed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from switchboard_client import wire

if TYPE_CHECKING:
    from switchboard_client.client import Client


class Membership:
    def __init__(self, client: Client) -> None:
        self._client = client

    # ------------------------------------------------------------------ requests
    async def requests(
        self, *, limit: int = 20, cursor: str | None = None
    ) -> wire.ConversationPage:
        """The conversations strangers started with you (``request`` is true on each)."""
        data: dict[str, object] = {"limit": limit, "folder": "requests"}
        if cursor is not None:
            data["cursor"] = cursor
        return await self._client.call(wire.ConversationPage, "conversation:list", data)

    async def accept(self, conversation_id: str) -> wire.ConsentChanged:
        return await self._client.call(
            wire.ConsentChanged, "conversation:accept", {"conversationId": conversation_id}
        )

    async def decline(self, conversation_id: str) -> wire.ConsentChanged:
        return await self._client.call(
            wire.ConsentChanged, "conversation:decline", {"conversationId": conversation_id}
        )

    async def set_accept_requests(self, accept: bool) -> wire.PreferencesView:
        """False: nobody new may start a conversation with you (``forbidden`` for them)."""
        return await self._client.call(
            wire.PreferencesView, "preferences:set", {"acceptRequests": accept}
        )

    # ------------------------------------------------------------------ membership
    async def leave(self, conversation_id: str) -> wire.MembershipChanged:
        return await self._client.call(
            wire.MembershipChanged, "conversation:leave", {"conversationId": conversation_id}
        )

    async def add_members(
        self, conversation_id: str, members: Iterable[str]
    ) -> wire.MembershipChanged:
        return await self._client.call(
            wire.MembershipChanged,
            "conversation:add-members",
            {"conversationId": conversation_id, "members": list(members)},
        )

    async def remove_member(self, conversation_id: str, user_id: str) -> wire.MembershipChanged:
        return await self._client.call(
            wire.MembershipChanged,
            "conversation:remove-member",
            {"conversationId": conversation_id, "userId": user_id},
        )

    async def set_role(
        self, conversation_id: str, user_id: str, role: Literal["admin", "member"]
    ) -> wire.MembershipChanged:
        return await self._client.call(
            wire.MembershipChanged,
            "conversation:set-role",
            {"conversationId": conversation_id, "userId": user_id, "role": role},
        )

    async def set_title(self, conversation_id: str, title: str) -> wire.MembershipChanged:
        return await self._client.call(
            wire.MembershipChanged,
            "conversation:set-title",
            {"conversationId": conversation_id, "title": title},
        )

    # ------------------------------------------------------------------ blocks
    async def block(self, user_id: str) -> wire.BlockChanged:
        return await self._client.call(wire.BlockChanged, "user:block", {"userId": user_id})

    async def unblock(self, user_id: str) -> wire.BlockChanged:
        return await self._client.call(wire.BlockChanged, "user:unblock", {"userId": user_id})

    async def blocks(self) -> list[str]:
        return (await self._client.call(wire.BlockList, "user:blocks")).userIds
