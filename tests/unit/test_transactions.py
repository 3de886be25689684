"""The transaction builder: cancellation reasons come back as the labels of the items that
failed, whatever their position, so adding an item cannot shift what a caller decodes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from switchboard.dal.transactions import Transaction


def cancelled(*codes: str) -> ClientError:
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
        "CancellationReasons": [{"Code": c} for c in codes],
    }
    return ClientError(response, "TransactWriteItems")


def three_items() -> Transaction:
    tx = Transaction()
    tx.put("meta", {"TableName": "t", "Item": {}})
    tx.update("limit:send", {"TableName": "t", "Key": {}})
    tx.delete("release:bob", {"TableName": "t", "Key": {}})
    return tx


def test_reasons_are_keyed_by_label_and_skip_items_that_were_fine() -> None:
    # Given a transaction of three labelled items
    tx = three_items()
    # When DynamoDB cancels it because of the second item's condition
    exc = cancelled("None", "ConditionalCheckFailed", "None")
    # Then the failure names that item, and only it
    assert tx.reasons(exc) == {"limit:send": "ConditionalCheckFailed"}
    assert tx.refused(exc) == ["limit:send"]
    assert not tx.conflicted(exc)


def test_a_conflict_is_told_apart_from_a_refused_condition() -> None:
    tx = three_items()
    exc = cancelled("TransactionConflict", "None", "None")
    assert tx.refused(exc) == []
    assert tx.conflicted(exc)


def test_an_error_that_is_no_cancellation_has_no_reasons() -> None:
    tx = three_items()
    other = ClientError({"Error": {"Code": "ValidationException"}}, "TransactWriteItems")
    assert tx.reasons(other) == {}
    assert tx.reasons(RuntimeError("boom")) == {}


def test_two_items_cannot_share_a_label() -> None:
    tx = three_items()
    with pytest.raises(ValueError, match="meta"):
        tx.put("meta", {"TableName": "t", "Item": {}})
    assert list(tx) == ["meta", "limit:send", "release:bob"]
