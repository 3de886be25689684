"""The identifier types every feature's wire models share. Their own module, holding no
model, so that a function whose wire models need an id (sessions, search, calls, uploads)
does not define the messaging models at cold start to get it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from switchboard import limits

UserId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_USER_ID_CHARS, pattern=r"^[^,\s]+$"),
]
ConversationId = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=limits.MAX_CONVERSATION_ID_CHARS, pattern=r"^[A-Za-z0-9_-]+$"
    ),
]
Seq = Annotated[int, Field(ge=0, le=2**53)]
