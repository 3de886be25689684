"""What every repository shares: its table and a lazily created, injectable client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from switchboard import aws
from switchboard.dal.items import carries_token

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


class DynamoRepository:
    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self.table = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.dynamodb()
        return self._client

    def wrote(self, key: dict[str, Any], token: str, attribute: str = "lastOp") -> bool:
        """Whether the write that carried ``token`` landed (``items.carries_token``)."""
        item = self.client.get_item(
            TableName=self.table,
            Key=key,
            ProjectionExpression=attribute,
            ConsistentRead=True,
        ).get("Item")
        return carries_token(item, token, attribute)


class SqsClientHolder:
    """A lazily created, injectable SQS client (queues a service writes to or reads)."""

    def __init__(self, *, client: SQSClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.sqs()
        return self._client
