"""TransactWriteItems with named parts.

DynamoDB reports why a transaction was cancelled as ``CancellationReasons``: one entry per
item, in the order the items were sent. Decoding that list by position breaks silently
the day someone adds an item, so every item here carries a label and a cancellation is
read back as "which labels failed, and why":

    tx = Transaction()
    tx.put("meta", {...})
    for user_id in members:
        tx.put(f"member:{user_id}", {...})
    try:
        tx.write(client)
    except ClientError as exc:
        if "meta" in tx.refused(exc):
            ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONDITION_FAILED = "ConditionalCheckFailed"
TRANSACTION_CONFLICT = "TransactionConflict"


class Transaction:
    def __init__(self) -> None:
        self._labels: list[str] = []
        self._items: list[dict[str, Any]] = []

    def put(self, label: str, put: dict[str, Any]) -> None:
        self._add(label, {"Put": put})

    def update(self, label: str, update: dict[str, Any]) -> None:
        self._add(label, {"Update": update})

    def delete(self, label: str, delete: dict[str, Any]) -> None:
        self._add(label, {"Delete": delete})

    def condition_check(self, label: str, check: dict[str, Any]) -> None:
        self._add(label, {"ConditionCheck": check})

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def write(self, client: DynamoDBClient) -> None:
        client.transact_write_items(TransactItems=self._items)  # type: ignore[arg-type]

    def reasons(self, exc: Exception) -> dict[str, str]:
        """Label -> cancellation code of every item that failed (items DynamoDB reports as
        ``"None"`` were fine). Empty if ``exc`` is not a cancelled transaction."""
        response = getattr(exc, "response", None) or {}
        codes = [r.get("Code", "None") for r in response.get("CancellationReasons", [])]
        return {
            label: code for label, code in zip(self._labels, codes, strict=False) if code != "None"
        }

    def refused(self, exc: Exception) -> list[str]:
        """The labels whose condition failed, in the order they were added."""
        return [label for label, code in self.reasons(exc).items() if code == CONDITION_FAILED]

    def conflicted(self, exc: Exception) -> bool:
        """Whether another transaction was writing the same items at the same moment."""
        return TRANSACTION_CONFLICT in self.reasons(exc).values()

    def _add(self, label: str, item: dict[str, Any]) -> None:
        if label in self._labels:
            raise ValueError(f"two items of one transaction are labelled {label!r}")
        self._labels.append(label)
        self._items.append(item)
