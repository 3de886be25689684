"""Token lifetime, revocation, the connection-flood limit and the send rate limit through
the devserver, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.clients import TIMEOUT, Client, eventually, has_connection_item
from tests.e2e.conftest import RunningDevserver, StartDevserver

pytestmark = pytest.mark.e2e


def _user(name: str = "u") -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_expired_token_gets_token_expired_then_auth_refresh_continues(
    devserver: RunningDevserver,
) -> None:
    user, peer = _user("alice"), _user("bob")
    # A token that expires in 1 s (the authorizer's 30 s leeway still lets it connect)
    async with Client(devserver, user, token=devserver.token(user, ttl=1)) as alice:
        await asyncio.sleep(2.1)
        assert await alice.error_code("conversation:create", {"members": [peer]}) == (
            "token_expired"
        )
        assert await alice.error_code("auth:refresh", {"token": "not-a-jwt"}) == "unauthorized"
        refreshed = await alice.call("auth:refresh", {"token": devserver.token(user, ttl=600)})
        assert refreshed["expiresAt"] > 0
        # The same connection carries on, in every function
        conversation = await alice.create_conversation([peer])
        assert (await alice.send(conversation, "after refresh"))["seq"] == 1
        assert (await alice.call("ping"))["pong"] is True


async def test_admin_revoke_closes_the_users_sockets_and_refuses_old_tokens(
    devserver: RunningDevserver,
) -> None:
    user = _user("mallory")
    old_token = devserver.token(user)
    victim_phone = await Client(devserver, user, token=old_token).connect()
    victim_laptop = await Client(devserver, user, token=old_token).connect()
    phone_id = await victim_phone.find_connection_id()
    async with Client(devserver, _user("admin"), token=None) as nobody:
        assert await nobody.error_code("admin:revoke", {"userId": user}) == "forbidden"
    admin = Client(devserver, "admin", token=devserver.token("admin", admin=True))
    async with admin:
        result = await admin.call("admin:revoke", {"userId": user})
    # Both connections are closed: by this DELETE, or already by the connection stream's
    # consumer, which re-checks each new connection's token against the revocation (a
    # connect record that reaches it after the revocation's write: the stream lags)
    assert (result["userId"], result["failedConnections"]) == (user, [])
    assert result["closedConnections"] + result["alreadyClosed"] == 2, result
    # Both sockets are closed by the server (management API DELETE), items gone
    await asyncio.wait_for(victim_phone.closed.wait(), TIMEOUT)
    await asyncio.wait_for(victim_laptop.closed.wait(), TIMEOUT)
    await eventually(lambda: not has_connection_item(devserver, phone_id))
    # The old token no longer opens a connection
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(devserver.url(old_token), open_timeout=TIMEOUT):
            pass
    assert refused.value.response.status_code in {401, 403}


async def test_connection_flood_and_send_rate_are_limited(
    start_devserver: StartDevserver,
) -> None:
    ds = start_devserver(
        "--workers",
        "1",
        "--param",
        "MaxConnectionsPerUser=2",
        "--param",
        "SendRateLimitPerConnection=3",
        "--param",
        "RateLimitWindowSeconds=3600",  # no window boundary inside the test
    )
    user, peer = _user("flood"), _user("peer")
    first, second = await Client(ds, user).connect(), await Client(ds, user).connect()
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ds.url(ds.token(user)), open_timeout=TIMEOUT):
                pass
        assert refused.value.response.status_code == 429
        conversation = await first.create_conversation([peer])
        assert [(await first.send(conversation, f"m{i}"))["seq"] for i in range(3)] == [1, 2, 3]
        reply = await first.request(
            "message:send", {"conversationId": conversation, "clientMessageId": "x", "body": "x"}
        )
        assert reply["error"]["code"] == "rate_limited"
        assert reply["error"]["details"]["retryAfterMs"] > 0
        # The connection stays usable, and the user's other device has its own budget
        assert (await first.call("ping"))["pong"] is True
        assert (await second.send(conversation, "from the other device"))["seq"] == 4
    finally:
        await first.close()
        await second.close()
