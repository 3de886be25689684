"""What follows a connection opening or closing, driven by the Connections table's stream
(functions/message/connection_events.py):
- opened: a connection whose token was revoked while it was connecting is closed
  (admin:revoke may have met its handshake, when API Gateway answers DELETE with 410);
  else the reconnect backlog (backlog.py), then presence (online on the first device);
- closed: the user's part of a call on that connection ends (calls/teardown.py), then
  presence (offline after the last device).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from switchboard.observability import logger

if TYPE_CHECKING:
    from switchboard.backlog import Backlog
    from switchboard.calls.teardown import CallTeardown
    from switchboard.presence import Presence


class ConnectionEvents:
    def __init__(self, backlog: Backlog, presence: Presence, calls: CallTeardown) -> None:
        self.backlog = backlog
        self.presence = presence
        self.calls = calls

    def connected(
        self,
        connection_id: str,
        user_id: str,
        connected_at: int,
        *,
        token_iat: int = 0,
        backlog_batch: bool = False,
    ) -> None:
        state = self.presence.users.presence([user_id])[user_id]
        if token_iat < state.tokens_valid_after:
            # Revoked after the $connect write (conditioned on the stamp) landed.
            self._close_revoked(connection_id, user_id, connected_at)
            return
        backlog = self.backlog.deliver(connection_id, user_id, connected_at, batch=backlog_batch)
        self.presence.connected(connection_id, user_id, connected_at, state=state)
        logger.info(
            "connection opened",
            extra={"connectionId": connection_id, "userId": user_id, "backlog": backlog.pushed},
        )

    def _close_revoked(self, connection_id: str, user_id: str, connected_at: int) -> None:
        delivery = self.backlog.delivery
        if not delivery.when_ready(
            connection_id, connected_at, lambda: delivery.gateway.delete(connection_id)
        ):
            delivery.forget(connection_id, user_id)
        logger.info(
            "revoked connection closed on its first stream record",
            extra={"connectionId": connection_id, "userId": user_id},
        )

    def disconnected(self, connection_id: str, user_id: str, now_ms: int) -> None:
        self.calls.connection_closed(connection_id, user_id)  # the peer learns at once
        self.presence.disconnected(connection_id, user_id, now_ms)
