"""Every SQS producer, with the body of the messages it puts on its queue (the consumers in
functions/ parse the same classes back):

- ``RetryQueue``: a push that failed for a retryable reason (functions/message/
  delivery_retry.py retries it with exponential backoff, then the DLQ holds it);
- ``NotificationQueue``: an offline recipient to notify in-app and by e-mail
  (functions/message/notification_worker.py);
- ``RingTimeoutQueue``: a delayed message per invitation; invitees still ringing when it
  arrives missed the call (functions/signaling/ring_timeout.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from switchboard.dal.base import SqsClientHolder

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_SQS_DELAY_SECONDS = 900
SQS_BATCH = 10  # SendMessageBatch takes at most 10 entries
VERIFY_EMAIL = "verify_email"  # the notification job that mails a verification code
RETRY_BASE_DELAY_SECONDS = 2


class EnqueueFailed(RuntimeError):
    """SQS refused some entries of a batch: nothing may be dropped silently."""


@dataclass(frozen=True, slots=True)
class RetryJob:
    connection_id: str
    user_id: str
    frame: str

    def body(self) -> str:
        return json.dumps(
            {"connectionId": self.connection_id, "userId": self.user_id, "frame": self.frame}
        )

    @classmethod
    def parse(cls, body: str) -> RetryJob:
        data = json.loads(body)
        return cls(data["connectionId"], data["userId"], data["frame"])


@dataclass(frozen=True, slots=True)
class NotificationJob:
    kind: str  # "message", "missed_call", ... or "digest" (end of an e-mail window)
    user_id: str
    created_at: int
    source: str  # what it is about, unique per event: "msg#<conversationId>#<seq>"
    data: dict[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None

    def body(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, body: str) -> NotificationJob:
        return cls(**json.loads(body))


@dataclass(frozen=True, slots=True)
class RingTimeout:
    call_id: str
    user_ids: list[str]

    def body(self) -> str:
        return json.dumps({"callId": self.call_id, "userIds": self.user_ids})

    @classmethod
    def parse(cls, body: str) -> RingTimeout:
        data = json.loads(body)
        return cls(str(data["callId"]), [str(u) for u in data["userIds"]])


class _Producer(SqsClientHolder):
    def __init__(self, queue_url: str, *, client: SQSClient | None = None) -> None:
        super().__init__(client=client)
        self.queue_url = queue_url

    def _send_batches(self, bodies: list[str], delay_seconds: int) -> None:
        for start in range(0, len(bodies), SQS_BATCH):
            chunk = bodies[start : start + SQS_BATCH]
            response = self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": body, "DelaySeconds": delay_seconds}
                    for i, body in enumerate(chunk)
                ],
            )
            if response.get("Failed"):
                raise EnqueueFailed(f"enqueue failed: {response['Failed']}")


class RetryQueue(_Producer):
    def enqueue(self, jobs: Iterable[RetryJob]) -> None:
        self._send_batches([job.body() for job in jobs], RETRY_BASE_DELAY_SECONDS)


class NotificationQueue(_Producer):
    def enqueue(self, jobs: Iterable[NotificationJob], delay_seconds: int = 0) -> None:
        self._send_batches([job.body() for job in jobs], delay_seconds)


class RingTimeoutQueue(_Producer):
    def schedule(self, timeout: RingTimeout, delay_seconds: int) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=timeout.body(),
            DelaySeconds=max(0, min(MAX_SQS_DELAY_SECONDS, delay_seconds)),
        )


def retry_backoff_seconds(receive_count: int) -> int:
    """Visibility timeout before the next attempt: 2, 4, 8, ... seconds (max 15 min)."""
    return int(
        min(MAX_SQS_DELAY_SECONDS, RETRY_BASE_DELAY_SECONDS * 2 ** max(0, receive_count - 1))
    )
