"""What follows a connection opening or closing, driven by the Connections table's stream
(functions/message/connection_events.py):
- opened: the reconnect backlog (backlog.py), then presence (online on the first device);
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

    def connected(self, connection_id: str, user_id: str, connected_at: int) -> None:
        backlog = self.backlog.deliver(connection_id, user_id)
        self.presence.connected(connection_id, user_id, connected_at)
        logger.info(
            "connection opened",
            extra={"connectionId": connection_id, "userId": user_id, "backlog": backlog.pushed},
        )

    def disconnected(self, connection_id: str, user_id: str, now_ms: int) -> None:
        self.calls.connection_closed(connection_id, user_id)  # the peer learns at once
        self.presence.disconnected(connection_id, user_id, now_ms)
