"""Call teardown on disconnect: when the connection a user was in a call on closes (or,
while ringing, the caller's), their part of the call ends and the others are told at once,
instead of waiting for a ring timeout or for the peer's media to time out."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from switchboard.calls.model import Call, leave
from switchboard.errors import NotFound
from switchboard.observability import logger

if TYPE_CHECKING:
    from switchboard.calls.service import CallService


class _NothingToDo(Exception):
    pass


class CallTeardown:
    def __init__(self, service: Callable[[], CallService]) -> None:
        # A factory: the connection-events function builds the call service on the first
        # disconnect only (connects never need the call code).
        self._factory = service
        self._service: CallService | None = None

    @property
    def service(self) -> CallService:
        if self._service is None:
            self._service = self._factory()
        return self._service

    def connection_closed(self, connection_id: str, user_id: str) -> bool:
        """Ends the user's part of a call this connection was in (the in-call connection,
        or the caller's while ringing). True if a call was affected."""
        service = self.service
        call_id = service.calls.active_call_id(user_id, service.now())
        if call_id is None:
            return False

        def change(call: Call) -> Call:
            me = call.participants.get(user_id)
            if me is None or me.connection_id != connection_id or not me.in_call or not call.live:
                raise _NothingToDo()
            return leave(call, user_id, service.now(), reason="disconnected")

        try:
            service.transition(call_id, change, connection_id)
        except (_NothingToDo, NotFound):
            return False
        logger.info("call left on disconnect", extra={"callId": call_id, "userId": user_id})
        return True
