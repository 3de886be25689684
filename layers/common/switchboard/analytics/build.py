"""Builds the analytics services from their settings (kept apart from switchboard.services
so the analytics functions do not import the messaging stack they never use)."""

from __future__ import annotations

from switchboard.analytics import records
from switchboard.analytics.aggregator import Aggregator, ConversationLookups
from switchboard.analytics.queues import QueueMonitor
from switchboard.analytics.report import AnalyticsReport
from switchboard.config import AggregatorSettings, AnalyticsApiSettings
from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.metrics import MetricsRepository


def sources(settings: AggregatorSettings) -> dict[str, records.Handler]:
    """Source table name -> record handler (a new source table registers here)."""
    return {
        settings.CONNECTIONS_TABLE: records.connections,
        settings.MESSAGES_TABLE: records.messages,
        settings.CONVERSATIONS_TABLE: records.conversations,
        settings.NOTIFICATIONS_TABLE: records.notifications,
        settings.RATE_LIMITS_TABLE: records.rate_limits,
        settings.CALLS_TABLE: records.calls,
        settings.UPLOADS_TABLE: records.uploads,
    }


def aggregator(settings: AggregatorSettings) -> Aggregator:
    return Aggregator(
        MetricsRepository(settings.METRICS_TABLE),
        sources(settings),
        ConversationLookups(
            ConversationRepository(settings.CONVERSATIONS_TABLE, settings.MESSAGES_TABLE)
        ),
    )


def report(settings: AnalyticsApiSettings) -> AnalyticsReport:
    return AnalyticsReport(MetricsRepository(settings.METRICS_TABLE), QueueMonitor(settings.QUEUES))
