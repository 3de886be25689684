"""The analytics HTTP API's answers, one pydantic model each: AnalyticsReport returns them
and FastAPI both serialises them and documents them in /api/analytics/openapi.json (which
schemathesis checks the live API against).

Fields are named as they travel (camelCase, like the wire models). Optional fields without
a value are left unset and the API serialises with ``exclude_unset``: a session that has
not ended has no ``endedAt`` key (not ``null``), while a figure that cannot be computed
(a rate over nothing) is set to ``None`` and travels as ``null``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class Latency(Answer):
    """A histogram's summary; a percentile is its bucket's upper bound (None: no samples)."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None


class Resolution(Answer):
    buckets: str
    relativeError: float
    note: str


class DeliveryLatency(Latency):
    resolution: Resolution


class Connections(Answer):
    total: int
    disconnections: int
    online: int
    peak: int
    onlineUsers: int = Field(description="distinct people online (three devices are one)")
    peakUsers: int
    messagesPerSession: float | None = Field(description="a session is one connection")
    typingEventsPerSession: float | None
    averageSessionMs: float | None


class Messages(Answer):
    sent: int
    delivered: int
    read: int
    failed: int = Field(description="pushes waiting in the delivery DLQ for a redrive")
    recipients: int
    onlineDeliveries: int
    offlineDeliveries: int
    onlineDeliveryRate: float | None
    offlineDeliveryRate: float | None
    attachments: int
    conversations: int
    deliveryLatencyMs: DeliveryLatency


class Calls(Answer):
    attempts: int
    answered: int
    missed: int
    rejected: int
    cancelled: int
    busy: int
    ended: int
    active: int
    answerRate: float | None
    averageDurationMs: float | None
    durationMs: Latency
    timeToAnswerMs: Latency


class Uploads(Answer):
    started: int
    completed: int
    failed: int
    aborted: int
    bytes: int
    failureRate: float | None


class DlqDepth(Answer):
    depth: int
    available: bool


class ProcessingTime(Answer):
    count: int
    average: float | None
    max: float | None


class Processing(Answer):
    """A main queue's consumer over the window (CloudWatch); only ``available`` when
    CloudWatch did not answer."""

    available: bool
    windowSeconds: int | None = None
    processed: int | None = None
    failed: int | None = None
    failureRate: float | None = None
    processingTimeMs: ProcessingTime | None = None


class QueueFigures(Answer):
    """One queue and its DLQ (SQS attributes now); figures a failed call could not get
    are left out (``available: false``)."""

    available: bool | None = None
    depth: int | None = None
    inFlight: int | None = None
    delayed: int | None = None
    dlq: DlqDepth | None = None
    dlqDepth: int | None = None
    processing: Processing | None = None


class Session(Answer):
    connectionId: str | None = None
    userId: str | None = None
    connectedAt: int | None = None
    endedAt: int | None = None
    durationMs: int | None = None
    device: str | None = None
    messages: int
    typingEvents: int


class Sessions(Answer):
    count: int
    sessions: list[Session]


class UserSessions(Answer):
    userId: str
    online: bool
    sessions: int
    sessionsEnded: int
    totalSessionMs: int
    averageSessionMs: float | None
    messages: int
    typingEvents: int
    callsStarted: int
    uploads: int
    uploadBytes: int
    recentSessions: list[Session]


class Counters(Answer):
    """The counters the aggregator adds per bucket (and in the totals)."""

    connections: int
    disconnections: int
    sessionMs: int
    conversations: int
    messagesSent: int
    recipients: int
    attachments: int
    messagesDelivered: int
    messagesRead: int
    offlineDeliveries: int
    typingEvents: int
    callAttempts: int
    callsAnswered: int
    callsRejected: int
    callsMissed: int
    callsCancelled: int
    callsBusy: int
    callsEnded: int
    callTimeMs: int
    uploadsStarted: int
    uploadsCompleted: int
    uploadsFailed: int
    uploadsAborted: int
    uploadBytes: int


class Window(Counters):
    deliveryLatencyMs: Latency


class Statistics(Answer):
    totals: Counters
    lastHour: Window
    lastDay: Window
    messagesPerMinuteLastHour: float
    deliveryLatencyMs: Latency
    calls: Calls
    uploads: Uploads


class SessionCounts(Answer):
    active: int
    recentlyEnded: int


class Overview(Answer):
    generatedAt: int = Field(description="epoch ms")
    connections: Connections
    messages: Messages
    queues: dict[str, QueueFigures]
    calls: Calls
    uploads: Uploads
    sessions: SessionCounts


class Point(Answer):
    t: int = Field(description="the bucket's start, epoch ms")
    bucket: str
    # int first: a counter stays an integer on the wire (smart union keeps the type).
    value: int | float | None = Field(description="null: no snapshot in that bucket (peaks)")


class TimeSeries(Answer):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    metric: str
    bucket: str
    truncated: bool
    from_: int = Field(alias="from")
    to: int
    points: list[Point]


class SignInConfig(Answer):
    """The dashboard's /admin/config.json: the OIDC provider's settings, or None (the
    devserver's dev token)."""

    oidc: dict[str, str] | None
