"""A receipt meeting a send's transaction on the same member item (the send moves every
member's activityAt): DynamoDB refuses the UpdateItem with TransactionConflictException,
which botocore does not retry, so the repository tries again."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from switchboard.dal.conversations import CURSOR_ATTEMPTS, ConversationRepository

_READ: dict[str, Any] = {"ProjectionExpression": "lastOp", "ConsistentRead": True}


def repository() -> tuple[ConversationRepository, Stubber]:
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    return ConversationRepository("conversations", "messages", client=client), Stubber(client)


def conflict(stub: Stubber) -> None:
    stub.add_client_error("update_item", "TransactionConflictException", http_status_code=400)
    # The lost-answer check: the refused write did not land.
    stub.add_response("get_item", {}, {"TableName": "conversations", "Key": ANY, **_READ})


def test_an_ack_meeting_a_send_transaction_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    repo, stub = repository()
    monkeypatch.setattr("switchboard.dal.conversations.time.sleep", lambda _: None)
    conflict(stub)
    moved = {"conversationId": {"S": "c1"}, "sk": {"S": "member#bob"}, "ackedSeq": {"N": "3"}}
    stub.add_response("update_item", {"Attributes": moved})
    with stub:
        member = repo.advance_cursor("c1", "bob", "ackedSeq", 3, 1)
    assert member is not None and member.acked_seq == 3
    stub.assert_no_pending_responses()


def test_it_gives_up_after_a_few_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    repo, stub = repository()
    monkeypatch.setattr("switchboard.dal.conversations.time.sleep", lambda _: None)
    for _ in range(CURSOR_ATTEMPTS):
        conflict(stub)
    with stub, pytest.raises(Exception, match="TransactionConflict"):
        repo.advance_cursor("c1", "bob", "ackedSeq", 3, 1)


def test_a_move_whose_answer_was_lost_reads_the_member_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller needs the moved item (its folder says whether a receipt may go): when
    the write landed but its answer was lost, it is read back, consistently."""
    repo, stub = repository()
    monkeypatch.setattr("switchboard.dal.conversations.write_token", lambda: "t1")
    stub.add_client_error("update_item", "InternalServerError", http_status_code=500)
    key = {"conversationId": {"S": "c1"}, "sk": {"S": "member#bob"}}
    stub.add_response(
        "get_item",
        {"Item": {"lastOp": {"S": "t1"}}},
        {"TableName": "conversations", "Key": key, **_READ},
    )
    item = {**key, "ackedSeq": {"N": "3"}, "folder": {"S": "inbox#bob"}}
    stub.add_response(
        "get_item",
        {"Item": item},
        {"TableName": "conversations", "Key": key, "ConsistentRead": True},
    )
    with stub:
        member = repo.advance_cursor("c1", "bob", "ackedSeq", 3, 1)
    stub.assert_no_pending_responses()
    assert member is not None and (member.acked_seq, member.folder) == (3, "inbox#bob")
