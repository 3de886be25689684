"""Switchboard's Python asyncio client (bots, scripts, tests) and a small CLI
(``python -m switchboard_client chat --user alice``).

```python
async with Client("ws://127.0.0.1:8080/dev", token) as client:
    conversation = (await client.create_conversation(["bob"]))["conversationId"]
    await client.send_message(conversation, "hi")
    async with client.events("message:new") as stream:
        async for event in stream:
            print(event.message)
```
"""

from switchboard_client import wire  # the generated reply and push models
from switchboard_client.backoff import Backoff
from switchboard_client.calls import Calls
from switchboard_client.client import Callback, Client, EventStream, TokenSource
from switchboard_client.errors import (
    ERRORS_BY_CODE,
    AuthenticationFailed,
    BadRequest,
    ClientClosed,
    Conflict,
    ConnectionLost,
    Forbidden,
    GatewayError,
    InternalError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    ServerError,
    SwitchboardClientError,
    TokenExpired,
    Unauthorized,
    UnexpectedReply,
    UnknownAction,
    UploadFailed,
)
from switchboard_client.inbox import Inbox
from switchboard_client.membership import Membership
from switchboard_client.message_ops import MessageOps
from switchboard_client.models import Event, Message, Sent, Stats
from switchboard_client.uploads import Uploads

__all__ = [
    "ERRORS_BY_CODE",
    "AuthenticationFailed",
    "Backoff",
    "BadRequest",
    "Callback",
    "Calls",
    "Client",
    "ClientClosed",
    "Conflict",
    "ConnectionLost",
    "Event",
    "EventStream",
    "Forbidden",
    "GatewayError",
    "Inbox",
    "InternalError",
    "Membership",
    "Message",
    "MessageOps",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RequestTimeout",
    "Sent",
    "ServerError",
    "Stats",
    "SwitchboardClientError",
    "TokenExpired",
    "TokenSource",
    "Unauthorized",
    "UnexpectedReply",
    "UnknownAction",
    "UploadFailed",
    "Uploads",
    "wire",
]
