"""Queue metrics on request: SQS GetQueueAttributes for every configured queue and DLQ."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from switchboard.analytics.answers import DlqDepth, QueueFigures
from switchboard.dal.base import SqsClientHolder
from switchboard.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeFilterType

_ATTRIBUTES: dict[str, QueueAttributeFilterType] = {
    "depth": "ApproximateNumberOfMessages",
    "inFlight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


class QueueMonitor(SqsClientHolder):
    def __init__(
        self, queues: Mapping[str, Mapping[str, str]], *, client: SQSClient | None = None
    ) -> None:
        """``queues``: label -> {"queue": url, "dlq": url} (either may be absent)."""
        super().__init__(client=client)
        self.queues = {k: dict(v) for k, v in queues.items()}

    def _stats(self, url: str) -> dict[str, Any]:
        try:
            attributes = self.client.get_queue_attributes(
                QueueUrl=url, AttributeNames=list(_ATTRIBUTES.values())
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            # One unreachable queue must not hide the others (nor turn into a 500).
            logger.warning(
                "queue attributes unavailable", extra={"queueUrl": url, "error": str(exc)}
            )
            return {"available": False}
        found: dict[str, str] = {str(k): v for k, v in attributes.items()}
        stats: dict[str, Any] = {k: int(found.get(v, 0)) for k, v in _ATTRIBUTES.items()}
        stats["available"] = True
        return stats

    def snapshot(self) -> dict[str, QueueFigures]:
        report: dict[str, QueueFigures] = {}
        for label, urls in sorted(self.queues.items()):
            entry: dict[str, Any] = {}
            if "queue" in urls:
                entry.update(self._stats(urls["queue"]))
            if "dlq" in urls:
                dlq = self._stats(urls["dlq"])
                entry["dlq"] = DlqDepth(depth=dlq.get("depth", 0), available=dlq["available"])
                entry["dlqDepth"] = dlq.get("depth", 0)
            report[label] = QueueFigures(**entry)
        return report
