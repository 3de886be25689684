"""The read side of analytics: what the HTTP API answers, from the Metrics table (and SQS)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from switchboard.analytics import histogram
from switchboard.analytics.answers import (
    Calls,
    Connections,
    Counters,
    DeliveryLatency,
    Messages,
    Overview,
    Point,
    QueueFigures,
    Resolution,
    Session,
    SessionCounts,
    Sessions,
    Statistics,
    TimeSeries,
    Uploads,
    UserSessions,
    Window,
)
from switchboard.analytics.periods import (
    SECONDS,
    Period,
    bucket_range,
    bucket_start,
    key_to_epoch,
)
from switchboard.analytics.queue_depths import QueueMonitor
from switchboard.analytics.queue_processing import QueueProcessing
from switchboard.analytics.records import CALL_ANSWER_MS, CALL_DURATION_MS, DELIVERY_MS
from switchboard.dal.metrics import (
    SESSION_COUNTERS,
    MetricsRepository,
    histograms,
    session_counters,
)

# Counters the aggregator adds per bucket (the timeseries API accepts exactly these).
COUNTERS = tuple(Counters.model_fields)
# Values computed per bucket from its counters, histogram and gauge snapshot.
DERIVED = (
    "peakOnline",
    "peakOnlineUsers",
    "deliveryCount",
    "deliveryP50",
    "deliveryP95",
    "deliveryP99",
)
SERIES = COUNTERS + DERIVED
MAX_POINTS = 1500
LATEST_MS = 253_402_300_740_000  # 9999-12-31T23:59:00Z, the last minute bucket there is
RESOLUTION = Resolution(
    buckets="logarithmic, 8 per doubling (2^(1/8) = 1.0905 wide)",
    relativeError=round(histogram.RELATIVE_RESOLUTION, 4),
    note="a percentile is its bucket's upper bound: >= the true value, < 9.05 % above it",
)


class AnalyticsReport:
    def __init__(
        self,
        repository: MetricsRepository,
        queues: QueueMonitor,
        processing: QueueProcessing | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repository = repository
        self.queue_monitor = queues
        self.queue_processing = processing
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # ------------------------------------------------------------------ sections
    def connections(self) -> Connections:
        totals, gauges = self.repository.totals(), self.repository.gauges()
        ended = int(totals.get("disconnections", 0))
        return Connections(
            total=int(totals.get("connections", 0)),
            disconnections=ended,
            online=max(0, int(gauges.get("online", 0))),
            peak=int(gauges.get("peakOnline", 0)),
            # Distinct people (one user on three devices is one), beside the connections.
            onlineUsers=max(0, int(gauges.get("onlineUsers", 0))),
            peakUsers=int(gauges.get("peakOnlineUsers", 0)),
            # A session is one connection, from open to close.
            messagesPerSession=_ratio(totals.get("messagesSent", 0), totals.get("connections")),
            typingEventsPerSession=_ratio(totals.get("typingEvents", 0), totals.get("connections")),
            averageSessionMs=_ratio(totals.get("sessionMs", 0), ended),
        )

    def messages(self, queues: dict[str, QueueFigures] | None = None) -> Messages:
        totals = self.repository.totals()
        if queues is None:
            queues = self.queues()
        recipients = int(totals.get("recipients", 0))
        offline = int(totals.get("offlineDeliveries", 0))
        online = max(0, recipients - offline)
        latency = histograms(totals).get(DELIVERY_MS, {})
        delivery = queues.get("delivery")
        return Messages(
            sent=int(totals.get("messagesSent", 0)),
            delivered=int(totals.get("messagesDelivered", 0)),
            read=int(totals.get("messagesRead", 0)),
            # Pushes that failed every retry and wait in the delivery DLQ for a redrive.
            failed=(delivery.dlqDepth or 0) if delivery else 0,
            recipients=recipients,
            onlineDeliveries=online,
            offlineDeliveries=offline,
            onlineDeliveryRate=_ratio(online, recipients),
            offlineDeliveryRate=_ratio(offline, recipients),
            attachments=int(totals.get("attachments", 0)),
            conversations=int(totals.get("conversations", 0)),
            deliveryLatencyMs=DeliveryLatency(
                **histogram.summary(latency).model_dump(), resolution=RESOLUTION
            ),
        )

    def calls(self) -> Calls:
        totals, gauges = self.repository.totals(), self.repository.gauges()
        found = histograms(totals)
        attempts, ended = int(totals.get("callAttempts", 0)), int(totals.get("callsEnded", 0))
        answered = int(totals.get("callsAnswered", 0))
        return Calls(
            attempts=attempts,
            answered=answered,
            missed=int(totals.get("callsMissed", 0)),
            rejected=int(totals.get("callsRejected", 0)),
            cancelled=int(totals.get("callsCancelled", 0)),
            busy=int(totals.get("callsBusy", 0)),
            ended=ended,
            active=max(0, int(gauges.get("activeCalls", 0))),
            answerRate=_ratio(answered, attempts),
            averageDurationMs=_ratio(totals.get("callTimeMs", 0), ended),
            durationMs=histogram.summary(found.get(CALL_DURATION_MS, {})),
            timeToAnswerMs=histogram.summary(found.get(CALL_ANSWER_MS, {})),
        )

    def uploads(self) -> Uploads:
        totals = self.repository.totals()
        completed, failed = (
            int(totals.get("uploadsCompleted", 0)),
            int(totals.get("uploadsFailed", 0)),
        )
        return Uploads(
            started=int(totals.get("uploadsStarted", 0)),
            completed=completed,
            failed=failed,
            aborted=int(totals.get("uploadsAborted", 0)),
            bytes=int(totals.get("uploadBytes", 0)),
            failureRate=_ratio(failed, completed + failed),
        )

    def queues(self) -> dict[str, QueueFigures]:
        """Depths now (SQS) and, for the main queues, processing over the last hour."""
        snapshot = self.queue_monitor.snapshot()
        if self.queue_processing is not None:
            for label, figures in self.queue_processing.snapshot().items():
                known = snapshot.get(label, QueueFigures())
                snapshot[label] = known.model_copy(update={"processing": figures})
                # model_copy does not mark the field as set: exclude_unset would drop it.
                snapshot[label].model_fields_set.add("processing")
        return snapshot

    def active_sessions(self, limit: int) -> Sessions:
        now = self._now_ms()
        sessions = [
            _session(s, stats, durationMs=max(0, now - int(s.get("connectedAt", now))))
            for s, stats in self._with_user_stats(self.repository.active_sessions(limit))
        ]
        return Sessions(count=len(sessions), sessions=sessions)

    def recent_sessions(self, limit: int) -> Sessions:
        sessions = [
            _session(s, stats)
            for s, stats in self._with_user_stats(self.repository.recent_sessions(limit))
        ]
        return Sessions(count=len(sessions), sessions=sessions)

    def user(self, user_id: str, limit: int) -> UserSessions:
        stats = self.repository.user_stats(user_id)
        sessions = [_session(s, stats) for s in self.repository.user_sessions(user_id, limit)]
        ended = int(stats.get("sessionsEnded", 0))
        return UserSessions(
            userId=user_id,
            online=any(s.endedAt is None for s in sessions),
            sessions=int(stats.get("sessions", 0)),
            sessionsEnded=ended,
            totalSessionMs=int(stats.get("sessionMs", 0)),
            averageSessionMs=_ratio(stats.get("sessionMs", 0), ended),
            messages=int(stats.get("messages", 0)),
            typingEvents=int(stats.get("typingEvents", 0)),
            callsStarted=int(stats.get("callsStarted", 0)),
            uploads=int(stats.get("uploads", 0)),
            uploadBytes=int(stats.get("uploadBytes", 0)),
            recentSessions=sessions,
        )

    def _with_user_stats(
        self, sessions: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Each session with its user's stats (where an open session's counters are)."""
        stats = self.repository.many_user_stats({str(s.get("userId", "")) for s in sessions})
        return [(s, stats.get(str(s.get("userId", "")), {})) for s in sessions]

    def statistics(self) -> Statistics:
        now = self._now_ms()
        totals = self.repository.totals()
        last_hour = self._window(now - 3_600_000 + 60_000, now, "minute")
        last_day = self._window(now - 86_400_000 + 3_600_000, now, "hour")
        return Statistics(
            totals=Counters(**{name: int(totals.get(name, 0)) for name in COUNTERS}),
            lastHour=last_hour,
            lastDay=last_day,
            messagesPerMinuteLastHour=round(last_hour.messagesSent / 60, 3),
            deliveryLatencyMs=histogram.summary(histograms(totals).get(DELIVERY_MS, {})),
            calls=self.calls(),
            uploads=self.uploads(),
        )

    def _window(self, from_ms: int, to_ms: int, period: Period) -> Window:
        keys = bucket_range(from_ms, to_ms, period)
        items = self.repository.buckets(period, keys[0], keys[-1])
        summed = {name: sum(int(i.get(name, 0)) for i in items.values()) for name in COUNTERS}
        latency = histogram.merge(histograms(i).get(DELIVERY_MS, {}) for i in items.values())
        return Window(**summed, deliveryLatencyMs=histogram.summary(latency))

    def overview(self) -> Overview:
        queues = self.queues()
        return Overview(
            generatedAt=self._now_ms(),
            connections=self.connections(),
            messages=self.messages(queues),
            queues=queues,
            calls=self.calls(),
            uploads=self.uploads(),
            sessions=SessionCounts(
                active=self.active_sessions(1000).count,
                recentlyEnded=self.recent_sessions(1000).count,
            ),
        )

    # ------------------------------------------------------------------ time series
    def timeseries(self, metric: str, from_ms: int, to_ms: int, period: Period) -> TimeSeries:
        """Every range a client can ask for has an answer (none of these limits fits in an
        OpenAPI schema): times are clamped to what bucket keys can name (1970 to
        9999-12-31T23:59Z), ``to`` before ``from`` is an empty range, and a range of more
        than MAX_POINTS buckets gives the MAX_POINTS that end at ``to`` (``truncated``)."""
        if metric not in SERIES:
            raise ValueError(f"unknown metric {metric!r}")
        from_ms, to_ms = (min(max(t, 0), LATEST_MS) for t in (from_ms, to_ms))
        if to_ms < from_ms:
            return TimeSeries(
                metric=metric, bucket=period, truncated=False, from_=from_ms, to=to_ms, points=[]
            )
        truncated = False
        last = bucket_start(to_ms, period)
        if (last - bucket_start(from_ms, period)) // SECONDS[period] + 1 > MAX_POINTS:
            from_ms = (last - (MAX_POINTS - 1) * SECONDS[period]) * 1000
            truncated = True
        keys = bucket_range(from_ms, to_ms, period)
        items = self.repository.buckets(period, keys[0], keys[-1])
        points = [
            Point(
                t=key_to_epoch(key, period) * 1000,
                bucket=key,
                value=_value(items.get(key, {}), metric),
            )
            for key in keys
        ]
        return TimeSeries(
            metric=metric,
            bucket=period,
            truncated=truncated,
            from_=from_ms,
            to=to_ms,
            points=points,
        )


def _value(item: dict[str, Any], metric: str) -> float | int | None:
    if metric in COUNTERS:
        return int(item.get(metric, 0))
    if metric in ("peakOnline", "peakOnlineUsers"):
        return int(item[metric]) if metric in item else None
    latency = histograms(item).get(DELIVERY_MS, {})
    if metric == "deliveryCount":
        return sum(latency.values())
    return histogram.percentile(latency, int(metric.removeprefix("deliveryP")))


def _ratio(part: Any, whole: Any) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def _session(item: dict[str, Any], user_stats: dict[str, Any], **extra: int) -> Session:
    # Only the keys the item has: an open session has no ``endedAt`` (left unset, not null).
    found: dict[str, Any] = {
        k: item[k]
        for k in ("connectionId", "userId", "connectedAt", "endedAt", "durationMs", "device")
        if k in item
    }
    # An ended session holds its counters; an open one's are on its user's stats (as is
    # anything counted for it after it ended): the sum is the session's figure.
    open_counts = session_counters(user_stats).get(str(item.get("connectionId", "")), {})
    for name in SESSION_COUNTERS:
        found[name] = int(item.get(name, 0)) + open_counts.get(name, 0)
    return Session(**{**found, **extra})
