"""Message operations' pure parts: the emoji rule, mute's request model, quote previews,
the retry refresh's input handling, and the Python client's change cursors (a scripted
requester: what is asked, and what the cursor does with each answer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import ValidationError
from switchboard.dal.conversations import StoredMessage
from switchboard.message_ops import fresh_retry, quote_of
from switchboard.queues import RetryJob
from switchboard.wire import message_ops as wire

from switchboard_client.message_ops import MESSAGE_CHANGED, MessageOps
from switchboard_client.models import Event


@pytest.mark.parametrize(
    "emoji",
    ["👍", "👍🏽", "❤️", "👨‍👩‍👧‍👦", "🇫🇷", "1️⃣", "#️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "☕", "👁️‍🗨️", "🧑🏽‍💻"],
)
def test_emoji_are_accepted(emoji: str) -> None:
    assert wire.MessageReact(conversationId="c", seq=1, emoji=emoji).emoji == emoji


@pytest.mark.parametrize(
    "emoji",
    [
        *("", "a", "ok", "1", "👍 ", " 👍", "\u202e👍", "\u200d", "\ufe0f", "👍" * 17, "<b>"),
        *("👍\n", "👍👍", "🇫🇷🇩🇪", "🇫", "👍🇫🇷"),
    ],
)
def test_anything_but_one_emoji_is_refused(emoji: str) -> None:
    with pytest.raises(ValidationError):
        wire.MessageReact(conversationId="c", seq=1, emoji=emoji)


def test_unmuting_takes_no_until() -> None:
    assert wire.ConversationMute(conversationId="c").muted is True
    with pytest.raises(ValidationError):
        wire.ConversationMute(conversationId="c", muted=False, until=10)


def _message(**extra: Any) -> StoredMessage:
    values: dict[str, Any] = {
        "conversation_id": "c",
        "seq": 3,
        "message_id": "m",
        "sender_id": "alice",
        "body": "x" * 150,
        "created_at": 1,
        "client_message_id": "k",
    }
    return StoredMessage(**(values | extra))


def test_a_quote_is_a_snippet_of_the_message_as_it_is_and_nothing_of_a_deleted_one() -> None:
    assert quote_of(_message(), 3).model_dump() == {
        "seq": 3,
        "senderId": "alice",
        "snippet": "x" * 100,
        "deleted": False,
    }
    gone = quote_of(_message(body="", deleted_at=5), 3)
    assert (gone.snippet, gone.deleted, gone.senderId) == ("", True, "alice")
    assert quote_of(None, 9).deleted is True


def test_a_stored_message_wires_its_changes_and_only_what_it_has() -> None:
    plain = _message().wire().wire()
    assert not {"version", "editedAt", "deletedAt", "reactions", "parentSeq"} & set(plain)
    changed = _message(
        version=3, edited_at=9, reactions={"👍": ["bob", "carol"]}, reply_count=2, parent_seq=None
    ).wire()
    assert changed.version == 3 and changed.editedAt == 9 and changed.replyCount == 2
    assert [r.model_dump() for r in changed.reactions or []] == [
        {"emoji": "👍", "count": 2, "userIds": ["bob", "carol"]}
    ]


class NoReads:
    """A repository that must not be read: input the refresh should leave alone."""

    def messages_at(self, keys: Any) -> Any:
        raise AssertionError(f"read {keys}")


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        json.dumps({"type": "typing", "data": {"conversationId": "c", "seq": 1}}),
        json.dumps({"type": "message:new", "data": {"conversationId": "c"}}),
        json.dumps({"type": "message:new", "data": None}),
    ],
)
def test_the_retry_refresh_leaves_other_pushes_and_garbage_alone(frame: str) -> None:
    job = RetryJob("conn", "bob", frame)
    assert fresh_retry(NoReads(), job) is job  # type: ignore[arg-type]


# ---------------------------------------------------------------------- Python client
class Scripted:
    """Answers message:changes from a script and records what was asked."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.asked: list[dict[str, Any]] = []

    async def call(
        self,
        model: type[Any],
        action: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        assert action == "message:changes"
        self.asked.append(dict(data or {}))
        return model.model_validate(self.pages.pop(0))


def _wired(seq: int, version: int) -> dict[str, Any]:
    return {
        "conversationId": "c",
        "seq": seq,
        "messageId": f"m{seq}",
        "senderId": "alice",
        "body": f"v{version}",
        "createdAt": 1,
        "clientMessageId": f"k{seq}",
        "version": version,
    }


def test_the_client_reads_changes_only_past_its_cursor_and_only_consecutive_pushes_move_it() -> (
    None
):
    events: list[Event] = []
    requester = Scripted(
        [
            {
                "conversationId": "c",
                "messages": [_wired(1, 2)],
                "cursor": 4,
                "lastChange": 5,
                "hasMore": True,
                "reset": False,
            },
            {
                "conversationId": "c",
                "messages": [_wired(2, 1)],
                "cursor": 5,
                "lastChange": 5,
                "hasMore": False,
                "reset": False,
            },
        ]
    )
    ops = MessageOps(requester, events.append)
    ops.seen("c", 2)  # first sight at change 2: the history read then is current
    ops.seen("quiet", 0)
    ops.note_push({"conversationId": "c", "change": 3})
    assert ops.change_cursors["c"] == 3
    ops.note_push({"conversationId": "c", "change": 5})  # change 4 was missed
    assert ops.change_cursors["c"] == 3
    delivered = asyncio.run(ops.sync_changes())
    assert requester.asked == [
        {"conversationId": "c", "afterChange": 3, "limit": 100},
        {"conversationId": "c", "afterChange": 4, "limit": 100},
    ]  # nothing asked for "quiet": its lastChange is its cursor
    assert delivered == 2 and ops.change_cursors == {"c": 5, "quiet": 0}
    assert [(e.type, e.message.seq if e.message else None) for e in events] == [
        (MESSAGE_CHANGED, 1),
        (MESSAGE_CHANGED, 2),
    ]
    assert asyncio.run(ops.sync_changes()) == 0 and len(requester.asked) == 2


def test_a_conversation_the_user_left_stops_being_followed_and_the_others_go_on() -> None:
    from switchboard_client.errors import NotFound

    class LeftOne(Scripted):
        async def call(
            self,
            model: type[Any],
            action: str,
            data: Mapping[str, Any] | None = None,
            *,
            timeout: float | None = None,
        ) -> Any:
            if (data or {}).get("conversationId") == "left":
                self.asked.append(dict(data or {}))
                # what the server answers a former member (as anyone not in it)
                raise NotFound("conversation not found")
            return await super().call(model, action, data, timeout=timeout)

    page = {
        "conversationId": "c",
        "messages": [_wired(1, 1)],
        "cursor": 1,
        "lastChange": 1,
        "hasMore": False,
        "reset": False,
    }
    requester = LeftOne([page])
    ops = MessageOps(requester, lambda _: None, {"left": 0, "c": 0})
    ops.seen("left", 3)
    ops.seen("c", 1)
    assert asyncio.run(ops.sync_changes()) == 1
    assert ops.change_cursors == {"c": 1}
    assert [a["conversationId"] for a in requester.asked] == ["left", "c"]
