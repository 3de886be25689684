"""Message search: the request, its hits and its reply."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

from typing import Annotated, Literal

from pydantic import Field

from switchboard.protocol import WireData, WireModel
from switchboard.wire.ids import ConversationId, Seq

MAX_QUERY_CHARS = 200
MAX_SEARCH_LIMIT = 50


class MessageSearch(WireModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    conversationId: ConversationId | None = None
    limit: int = Field(default=20, ge=1, le=MAX_SEARCH_LIMIT)
    cursor: str | None = Field(default=None, max_length=256)


class SearchHit(WireData):
    conversationId: str
    seq: Seq
    messageId: str
    senderId: str
    createdAt: int
    snippet: str = Field(description="about 160 characters of the message around the match")
    highlights: list[Annotated[list[int], Field(min_length=2, max_length=2)]] = Field(
        description="[start, end) of each matched word in `snippet`, in Unicode code points"
    )
    field: Literal["body", "attachment"] = Field(
        description='"attachment" when only a file name matched'
    )


class SearchResult(WireData):
    hits: list[SearchHit]
    cursor: str | None = Field(
        description=(
            "the next page (null: the last one); a search reads the newest messages first,"
            " so a page can hold fewer hits than `limit`, even none, and still have a cursor"
        )
    )


ACTIONS: dict[str, type[WireModel]] = {"message:search": MessageSearch}
REPLIES: dict[str, type[WireData]] = {"message:search": SearchResult}
