"""The one place where services are built from a function's settings: every function
wires repositories, gateway and queues the same way, here. Nothing runs at import time,
and each builder imports what it uses, so a function pays at cold start only for its own
services (the authorizer never loads the messaging stack, analytics never loads calls).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switchboard.analytics.access import AdminAccess
    from switchboard.analytics.aggregator import Aggregator
    from switchboard.analytics.records import Handler
    from switchboard.analytics.report import AnalyticsReport
    from switchboard.auth import ConnectAuthorizer, TokenVerifier
    from switchboard.calls.repository import CallRepository
    from switchboard.calls.service import CallService
    from switchboard.config import (
        AggregatorSettings,
        AnalyticsApiSettings,
        AuthorizerSettings,
        CallSettings,
        DeliveryRetrySettings,
        DeliverySettings,
        MessagingSettings,
        NotificationSettings,
        SearchSettings,
        SessionSettings,
        UploadSettings,
    )
    from switchboard.connection_events import ConnectionEvents
    from switchboard.dal.conversations import ConversationRepository
    from switchboard.dal.uploads import ObjectStore, UploadRepository
    from switchboard.delivery import Delivery
    from switchboard.membership import MembershipService
    from switchboard.message_ops import MessageOpsService
    from switchboard.messaging import MessagingService
    from switchboard.notifier import NotificationService
    from switchboard.preferences import PreferencesService
    from switchboard.search.indexer import SearchIndexer
    from switchboard.search.service import SearchService
    from switchboard.sessions import SessionService
    from switchboard.uploads import Limits as UploadLimits
    from switchboard.uploads import UploadProcessor, UploadService


# ---------------------------------------------------------------------- shared parts
def delivery(settings: DeliverySettings) -> Delivery:
    from switchboard.dal.connections import ConnectionRepository
    from switchboard.dal.users import UserRepository
    from switchboard.delivery import Delivery
    from switchboard.gateway import ManagementApi
    from switchboard.queues import RetryQueue

    users = UserRepository(settings.USERS_TABLE)
    return Delivery(
        users,
        ConnectionRepository(
            settings.CONNECTIONS_TABLE, users, ttl_seconds=settings.CONNECTION_TTL_SECONDS
        ),
        ManagementApi(settings.WEBSOCKET_ENDPOINT, max_concurrency=settings.FANOUT_CONCURRENCY),
        RetryQueue(settings.DELIVERY_QUEUE_URL),
    )


def conversations(
    settings: MessagingSettings
    | CallSettings
    | UploadSettings
    | SearchSettings
    | DeliveryRetrySettings,
) -> ConversationRepository:
    from switchboard.dal.conversations import ConversationRepository

    return ConversationRepository(settings.CONVERSATIONS_TABLE, settings.MESSAGES_TABLE)


def messaging(settings: MessagingSettings) -> MessagingService:
    # Imported here: the messaging service and its wire models (~20 ms of cold start) are
    # the message function's; signaling and uploads build their services without them.
    from switchboard.dal.notifications import NotificationRepository
    from switchboard.dal.ratelimits import RateLimiter, WindowLimiter
    from switchboard.dal.uploads import UploadRepository
    from switchboard.messaging import Limits, MessagingService
    from switchboard.queues import NotificationQueue

    return MessagingService(
        conversations(settings),
        delivery(settings),
        NotificationQueue(settings.NOTIFICATION_QUEUE_URL),
        NotificationRepository(settings.NOTIFICATIONS_TABLE),
        WindowLimiter(settings.RATE_LIMITS_TABLE),
        RateLimiter(settings.RATE_LIMITS_TABLE),
        UploadRepository(settings.UPLOADS_TABLE),
        limits=Limits(
            max_members=settings.MAX_MEMBERS,
            window_seconds=settings.RATE_WINDOW_SECONDS,
            sends_per_user=settings.SEND_LIMIT_PER_USER,
            sends_per_connection=settings.SEND_LIMIT_PER_CONNECTION,
            creates_per_user=settings.CREATE_LIMIT_PER_USER,
        ),
    )


def message_ops(settings: MessagingSettings, shared: MessagingService) -> MessageOpsService:
    """Edits, deletes, reactions, threads, mute: on the messaging service's own
    repositories and delivery (one set of clients per function)."""
    from switchboard.message_ops import MessageOpsLimits, MessageOpsService

    return MessageOpsService(
        shared.conversations,
        shared.delivery,
        shared.counters,
        settings.UPLOADS_TABLE,
        shared.blocks,
        limits=MessageOpsLimits(
            edit_window_seconds=settings.EDIT_WINDOW_SECONDS,
            ops_per_user=settings.MESSAGE_OP_LIMIT_PER_USER,
            window_seconds=settings.RATE_WINDOW_SECONDS,
        ),
    )


def membership(settings: MessagingSettings, shared: MessagingService) -> MembershipService:
    """Requests, blocks, leaving and group roles (membership.py), on the message
    function's repositories and delivery."""
    from switchboard.dal.membership import BlockRepository, MembershipRepository
    from switchboard.membership import ConsentLimits, MembershipService

    return MembershipService(
        shared.conversations,
        MembershipRepository(settings.CONVERSATIONS_TABLE, settings.MESSAGES_TABLE),
        BlockRepository(settings.USERS_TABLE),
        shared.delivery,
        shared.counters,
        limits=ConsentLimits(
            max_members=settings.MAX_MEMBERS,
            window_seconds=settings.RATE_WINDOW_SECONDS,
            creates_per_user=settings.CREATE_LIMIT_PER_USER,
        ),
    )


def preferences(settings: MessagingSettings) -> PreferencesService:
    from switchboard.dal.ratelimits import RateLimiter
    from switchboard.dal.users import UserRepository
    from switchboard.preferences import PreferencesService
    from switchboard.queues import NotificationQueue

    return PreferencesService(
        UserRepository(settings.USERS_TABLE),
        RateLimiter(settings.RATE_LIMITS_TABLE),
        NotificationQueue(settings.NOTIFICATION_QUEUE_URL),
    )


def notifications(settings: NotificationSettings) -> NotificationService:
    from switchboard.dal.notifications import NotificationRepository
    from switchboard.dal.ratelimits import RateLimiter, WindowLimiter
    from switchboard.notifier import Mailer, NotificationService
    from switchboard.queues import NotificationQueue

    shared_delivery = delivery(settings)
    return NotificationService(
        NotificationRepository(settings.NOTIFICATIONS_TABLE),
        shared_delivery.users,
        conversations(settings),
        shared_delivery,
        WindowLimiter(settings.RATE_LIMITS_TABLE),
        NotificationQueue(settings.NOTIFICATION_QUEUE_URL),
        Mailer(settings.EMAIL_SENDER),
        counters=RateLimiter(settings.RATE_LIMITS_TABLE),
        unsubscribe_url=settings.UNSUBSCRIBE_URL,
        daily_mail_limit=settings.MAIL_DAILY_LIMIT_PER_USER,
    )


def connection_events(settings: MessagingSettings, call_settings: CallSettings) -> ConnectionEvents:
    from switchboard.backlog import Backlog
    from switchboard.calls.teardown import CallTeardown
    from switchboard.connection_events import ConnectionEvents
    from switchboard.presence import Presence

    shared_conversations, shared_delivery = conversations(settings), delivery(settings)
    return ConnectionEvents(
        Backlog(shared_conversations, shared_delivery),
        Presence(shared_conversations, shared_delivery),
        # Built on the first disconnect: connects never need the call code.
        CallTeardown(lambda: calls(call_settings)),
    )


def calls(settings: CallSettings) -> CallService:
    from switchboard.calls.repository import CallRepository
    from switchboard.calls.service import CallLimits, CallService
    from switchboard.config import SignalingSettings
    from switchboard.queues import NotificationQueue, RingTimeoutQueue

    ice_servers, counters, calls_per_minute = None, None, 0
    if isinstance(settings, SignalingSettings):
        from switchboard.dal.ratelimits import RateLimiter
        from switchboard.turn import IceServers, secrets_manager_secret, split_urls

        counters = RateLimiter(settings.RATE_LIMITS_TABLE)
        calls_per_minute = settings.CALL_LIMIT_PER_MINUTE
        ice_servers = IceServers(
            stun_urls=split_urls(settings.STUN_URLS),
            turn_urls=split_urls(settings.TURN_URLS),
            ttl_seconds=settings.TURN_CREDENTIAL_TTL_SECONDS,
            secret=secrets_manager_secret(
                settings.TURN_SECRET_ARN, settings.TURN_SECRET_MAX_AGE_SECONDS
            ),
            counters=counters,
            issues_per_minute=settings.TURN_ISSUES_PER_MINUTE,
        )
    return CallService(
        CallRepository(settings.CALLS_TABLE, retention_days=settings.CALL_RETENTION_DAYS),
        delivery(settings),
        conversations(settings),
        NotificationQueue(settings.NOTIFICATION_QUEUE_URL),
        RingTimeoutQueue(settings.RING_TIMEOUT_QUEUE_URL),
        limits=CallLimits(
            ring_timeout_seconds=settings.RING_TIMEOUT_SECONDS,
            max_participants=settings.MAX_CALL_PARTICIPANTS,
            calls_per_minute=calls_per_minute,
        ),
        ice_servers=ice_servers,
        counters=counters,
    )


def _upload_parts(settings: UploadSettings) -> tuple[UploadRepository, ObjectStore, UploadLimits]:
    from switchboard.dal.uploads import ObjectStore, UploadRepository
    from switchboard.uploads import Limits

    limits = Limits(
        allowed_types=settings.allowed_content_types,
        max_bytes=settings.UPLOAD_MAX_BYTES,
        multipart_threshold=settings.UPLOAD_MULTIPART_THRESHOLD_BYTES,
        part_bytes=settings.UPLOAD_PART_BYTES,
        max_parts=settings.UPLOAD_MAX_PARTS,
        url_ttl=settings.UPLOAD_URL_TTL_SECONDS,
        download_ttl=settings.DOWNLOAD_URL_TTL_SECONDS,
        upload_ttl=settings.UPLOAD_TTL_SECONDS,
        thumbnail_px=settings.THUMBNAIL_MAX_PIXELS,
        image_max_pixels=settings.IMAGE_MAX_PIXELS,
        image_max_total_pixels=settings.IMAGE_MAX_TOTAL_PIXELS,
        image_max_frames=settings.IMAGE_MAX_FRAMES,
        image_max_bytes=settings.IMAGE_MAX_BYTES,
        media_max_bytes=settings.MEDIA_MAX_BYTES,
        voice_max_seconds=settings.VOICE_MAX_SECONDS,
        recording_max_seconds=settings.RECORDING_MAX_SECONDS,
        starts_per_user=settings.UPLOAD_START_LIMIT_PER_USER,
        start_window_seconds=settings.UPLOAD_START_WINDOW_SECONDS,
        min_bytes_per_second=settings.UPLOAD_MIN_BYTES_PER_SECOND,
    )
    return UploadRepository(settings.UPLOADS_TABLE), ObjectStore(settings.UPLOADS_BUCKET), limits


def uploads(settings: UploadSettings) -> UploadService:
    from switchboard.dal.ratelimits import RateLimiter
    from switchboard.uploads import UploadService

    repository, store, limits = _upload_parts(settings)
    calls_table = settings.CALLS_TABLE

    @cache
    def call_repository() -> CallRepository:
        # Imported and built on the first recording's upload:start, not at cold start.
        from switchboard.calls.repository import CallRepository

        return CallRepository(calls_table)

    return UploadService(
        repository,
        store,
        delivery(settings),
        limits,
        conversations(settings),
        counters=RateLimiter(settings.RATE_LIMITS_TABLE),
        calls=call_repository if calls_table else None,
    )


def upload_processor(settings: UploadSettings) -> UploadProcessor:
    from switchboard.uploads import UploadProcessor

    repository, store, limits = _upload_parts(settings)
    return UploadProcessor(repository, store, delivery(settings), limits)


# ---------------------------------------------------------------------- search
def search(settings: SearchSettings) -> SearchService:
    from switchboard.dal.ratelimits import RateLimiter
    from switchboard.search.index import SearchIndexRepository
    from switchboard.search.service import SearchLimits, SearchService

    return SearchService(
        SearchIndexRepository(settings.SEARCH_INDEX_TABLE),
        conversations(settings),
        RateLimiter(settings.RATE_LIMITS_TABLE),
        limits=SearchLimits(
            max_clauses=settings.SEARCH_MAX_WORDS,
            documents_per_read=settings.SEARCH_DOCUMENTS_PER_READ,
            reads_per_search=settings.SEARCH_READS_PER_SEARCH,
            searches_per_user=settings.SEARCH_LIMIT_PER_USER,
            window_seconds=settings.RATE_WINDOW_SECONDS,
        ),
    )


def search_indexer(settings: SearchSettings) -> SearchIndexer:
    from switchboard.search.index import SearchIndexRepository
    from switchboard.search.indexer import IndexLimits, SearchIndexer

    return SearchIndexer(
        SearchIndexRepository(settings.SEARCH_INDEX_TABLE),
        conversations(settings),
        IndexLimits(
            max_terms=settings.SEARCH_MAX_TERMS_PER_MESSAGE,
        ),
    )


def refreshed_token_exp(settings: SearchSettings) -> Callable[[str], int]:
    """What the router asks once a connection's token expired (``auth:refresh``)."""
    from switchboard.dal.connections import ConnectionRepository
    from switchboard.dal.users import UserRepository

    connections = ConnectionRepository(
        settings.CONNECTIONS_TABLE, UserRepository(settings.USERS_TABLE)
    )
    return connections.refreshed_token_exp


# ---------------------------------------------------------------------- sessions
def authorizer(settings: AuthorizerSettings) -> ConnectAuthorizer:
    from switchboard.auth import ConnectAuthorizer, TokenVerifier
    from switchboard.dal.users import UserRepository

    return ConnectAuthorizer(TokenVerifier(settings), UserRepository(settings.USERS_TABLE))


def sessions(settings: SessionSettings) -> SessionService:
    from switchboard.dal.connections import ConnectionRepository
    from switchboard.dal.ratelimits import RateLimiter
    from switchboard.dal.users import UserRepository
    from switchboard.gateway import ManagementApi
    from switchboard.sessions import SessionService

    users = UserRepository(settings.USERS_TABLE)
    verifier: list[TokenVerifier] = []

    def lazy_verifier() -> TokenVerifier:
        # PyJWT (and the secret) load on the first auth:refresh, off the $connect cold path.
        if not verifier:
            from switchboard.auth import TokenVerifier

            verifier.append(TokenVerifier(settings))
        return verifier[0]

    return SessionService(
        ConnectionRepository(
            settings.CONNECTIONS_TABLE,
            users,
            ttl_seconds=settings.CONNECTION_TTL_SECONDS,
            max_per_user=settings.MAX_CONNECTIONS_PER_USER,
            connect_limit=(
                RateLimiter(settings.RATE_LIMITS_TABLE),
                settings.CONNECT_LIMIT_PER_MINUTE,
            ),
        ),
        users,
        lazy_verifier,
        ManagementApi(settings.WEBSOCKET_ENDPOINT, max_concurrency=8),
    )


# ---------------------------------------------------------------------- analytics
def analytics_sources(settings: AggregatorSettings) -> dict[str, Handler]:
    """Source table name -> record handler (a new source table registers here)."""
    from switchboard.analytics import records

    return {
        settings.CONNECTIONS_TABLE: records.connections,
        settings.MESSAGES_TABLE: records.messages,
        settings.CONVERSATIONS_TABLE: records.conversations,
        settings.NOTIFICATIONS_TABLE: records.notifications,
        settings.RATE_LIMITS_TABLE: records.rate_limits,
        settings.CALLS_TABLE: records.calls,
        settings.UPLOADS_TABLE: records.uploads,
    }


def analytics_aggregator(settings: AggregatorSettings) -> Aggregator:
    from switchboard.analytics.aggregator import Aggregator, ConversationLookups
    from switchboard.dal.conversations import ConversationRepository
    from switchboard.dal.metrics import MetricsRepository

    return Aggregator(
        MetricsRepository(settings.METRICS_TABLE),
        analytics_sources(settings),
        ConversationLookups(
            ConversationRepository(settings.CONVERSATIONS_TABLE, settings.MESSAGES_TABLE)
        ),
    )


def analytics_report(settings: AnalyticsApiSettings) -> AnalyticsReport:
    from switchboard.analytics.queue_depths import QueueMonitor
    from switchboard.analytics.queue_processing import QueueProcessing
    from switchboard.analytics.report import AnalyticsReport
    from switchboard.dal.metrics import MetricsRepository

    processing = QueueProcessing(
        settings.main_queues,
        namespace=settings.POWERTOOLS_METRICS_NAMESPACE,
        service=settings.POWERTOOLS_SERVICE_NAME,
    )
    return AnalyticsReport(
        MetricsRepository(settings.METRICS_TABLE), QueueMonitor(settings.QUEUES), processing
    )


def analytics_access(settings: AnalyticsApiSettings) -> AdminAccess:
    from switchboard.analytics.access import AdminAccess

    return AdminAccess(authorizer(settings))
