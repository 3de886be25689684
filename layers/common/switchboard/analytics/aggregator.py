"""The stream aggregator's domain side: record -> contributions -> applied exactly once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from switchboard.analytics.records import (
    Contribution,
    Handler,
    SentMessage,
    StreamChange,
    contributions,
)
from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.metrics import MetricsRepository
from switchboard.observability import logger, metrics

PAGE = 500
MEMBER_CACHE = 4096

# Counters also published as CloudWatch metrics (EMF) for the dashboard and alarms.
_EMF = {
    "connections": "ConnectionsOpened",
    "disconnections": "ConnectionsClosed",
    "messagesSent": "MessagesSent",
    "messagesDelivered": "MessagesDelivered",
    "offlineDeliveries": "OfflineDeliveries",
}


class ConversationLookups:
    """Members and sent messages, read from the messaging tables (members never change
    once a conversation exists, so they are cached for the execution environment)."""

    def __init__(self, conversations: ConversationRepository) -> None:
        self._conversations = conversations
        self._members: dict[str, frozenset[str]] = {}

    def members(self, conversation_id: str) -> frozenset[str]:
        if conversation_id not in self._members:
            if len(self._members) >= MEMBER_CACHE:
                self._members.clear()
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                return frozenset()
            self._members[conversation_id] = conversation.members
        return self._members[conversation_id]

    def messages(self, conversation_id: str, after_seq: int, to_seq: int) -> list[SentMessage]:
        found: list[SentMessage] = []
        cursor = after_seq
        while cursor < to_seq:
            page = self._conversations.messages_after(
                conversation_id, cursor, min(PAGE, to_seq - cursor)
            )
            if not page:
                break
            found += [
                SentMessage(m.seq, m.sender_id, m.created_at) for m in page if m.seq <= to_seq
            ]
            cursor = page[-1].seq
        return found


class Aggregator:
    def __init__(
        self,
        repository: MetricsRepository,
        sources: Mapping[str, Handler],
        lookups: ConversationLookups,
    ) -> None:
        self.repository = repository
        self.sources = sources
        self.lookups = lookups

    def handle(self, record: Mapping[str, Any]) -> tuple[int, int]:
        """Applies one stream record; returns (contributions applied, duplicates skipped)."""
        change = StreamChange.from_record(record)
        applied = skipped = 0
        for contribution in contributions(change, self.sources, self.lookups):
            if self.repository.apply(contribution):
                applied += 1
                _publish(contribution)
            else:
                skipped += 1
            if contribution.gauges.get("online", 0) > 0:
                # Peaks rise only when a connection opens (a close never raises them).
                # Also after a duplicate: the first attempt may have died before this.
                self.repository.raise_peak(contribution.at_ms)
        if skipped:
            logger.info(
                "duplicate stream changes skipped",
                extra={"table": change.table, "eventName": change.event_name, "skipped": skipped},
            )
        return applied, skipped

    def handle_batch(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Applies a batch of stream records: the contributions of every record that opens
        or closes no session together (MetricsRepository.apply_many: a few transactions
        for the batch), then the records that do, one by one (``handle``: they read and
        condition on the user's open sessions). Each is counted once, whatever was
        counted before (markers), so if this raises the caller may apply the records one
        by one. Returns (contributions applied, duplicates skipped)."""
        together: list[Contribution] = []
        alone: list[Mapping[str, Any]] = []
        for record in records:
            found = contributions(StreamChange.from_record(record), self.sources, self.lookups)
            if any(c.session_start or c.session_end for c in found):
                alone.append(record)
            else:
                together += found
        applied = skipped = 0
        if together:
            for contribution, counted in zip(
                together, self.repository.apply_many(together), strict=True
            ):
                if counted:
                    applied += 1
                    _publish(contribution)
                else:
                    skipped += 1
            if skipped:
                logger.info("duplicate stream changes skipped", extra={"skipped": skipped})
        for record in alone:
            done, duplicates = self.handle(record)
            applied, skipped = applied + done, skipped + duplicates
        return applied, skipped


def _publish(contribution: Contribution) -> None:
    for counter, name in _EMF.items():
        value = contribution.counters.get(counter)
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for value in contribution.latencies.get("deliveryMs", []):
        metrics.add_metric(name="DeliveryLatency", unit=MetricUnit.Milliseconds, value=value)
