"""Builds the services of a function from its settings (one place, so every function wires
repositories, gateway and queues the same way). Nothing here runs at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from switchboard.config import (
    CallSettings,
    DeliverySettings,
    MessagingSettings,
    NotificationSettings,
    SignalingSettings,
)
from switchboard.dal.connections import ConnectionRepository
from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.notifications import NotificationRepository
from switchboard.dal.ratelimits import RateLimiter, WindowLimiter
from switchboard.dal.users import UserRepository
from switchboard.delivery import Delivery
from switchboard.gateway import ManagementApi
from switchboard.notifications import Mailer, NotificationQueue, NotificationService
from switchboard.presence import ConnectionEvents

if TYPE_CHECKING:
    from switchboard.calls import CallService
    from switchboard.config import UploadSettings
    from switchboard.dal.uploads import ObjectStore, UploadRepository
    from switchboard.messaging import MessagingService
    from switchboard.preferences import PreferencesService
    from switchboard.uploads import Limits as UploadLimits
    from switchboard.uploads import UploadProcessor, UploadService


def delivery(settings: DeliverySettings) -> Delivery:
    users = UserRepository(settings.USERS_TABLE)
    return Delivery(
        users,
        ConnectionRepository(
            settings.CONNECTIONS_TABLE, users, ttl_seconds=settings.CONNECTION_TTL_SECONDS
        ),
        ManagementApi(settings.WEBSOCKET_ENDPOINT, max_concurrency=settings.FANOUT_CONCURRENCY),
        settings.DELIVERY_QUEUE_URL,
    )


def conversations(settings: MessagingSettings) -> ConversationRepository:
    return ConversationRepository(settings.CONVERSATIONS_TABLE, settings.MESSAGES_TABLE)


def messaging(settings: MessagingSettings) -> MessagingService:
    # Imported here: the messaging service and its wire models (~20 ms of cold start) are
    # the message function's; signaling and uploads build their services without them.
    from switchboard.dal.uploads import UploadRepository
    from switchboard.messaging import Limits, MessagingService

    return MessagingService(
        conversations(settings),
        delivery(settings),
        NotificationQueue(settings.NOTIFICATION_QUEUE_URL),
        NotificationRepository(settings.NOTIFICATIONS_TABLE),
        WindowLimiter(settings.RATE_LIMITS_TABLE),
        RateLimiter(settings.RATE_LIMITS_TABLE),
        UploadRepository(settings.UPLOADS_TABLE),
        limits=Limits(
            max_body_chars=settings.MAX_BODY_CHARS,
            max_members=settings.MAX_MEMBERS,
            window_seconds=settings.RATE_WINDOW_SECONDS,
            sends_per_user=settings.SEND_LIMIT_PER_USER,
            sends_per_connection=settings.SEND_LIMIT_PER_CONNECTION,
            creates_per_user=settings.CREATE_LIMIT_PER_USER,
        ),
    )


def preferences(settings: MessagingSettings) -> PreferencesService:
    from switchboard.preferences import PreferencesService

    return PreferencesService(
        UserRepository(settings.USERS_TABLE),
        RateLimiter(settings.RATE_LIMITS_TABLE),
        NotificationQueue(settings.NOTIFICATION_QUEUE_URL),
    )


def notifications(settings: NotificationSettings) -> NotificationService:
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


def connection_events(settings: MessagingSettings) -> ConnectionEvents:
    return ConnectionEvents(conversations(settings), delivery(settings))


def calls(settings: CallSettings) -> CallService:
    from switchboard.calls import CallLimits, CallService, RingTimeoutQueue
    from switchboard.dal.calls import CallRepository

    ice_servers = None
    if isinstance(settings, SignalingSettings):
        from switchboard.turn import IceServers, secrets_manager_secret, split_urls

        ice_servers = IceServers(
            stun_urls=split_urls(settings.STUN_URLS),
            turn_urls=split_urls(settings.TURN_URLS),
            ttl_seconds=settings.TURN_CREDENTIAL_TTL_SECONDS,
            secret=secrets_manager_secret(
                settings.TURN_SECRET_ARN, settings.TURN_SECRET_MAX_AGE_SECONDS
            ),
            counters=RateLimiter(settings.RATE_LIMITS_TABLE),
            issues_per_minute=settings.TURN_ISSUES_PER_MINUTE,
        )
    return CallService(
        CallRepository(settings.CALLS_TABLE, retention_days=settings.CALL_RETENTION_DAYS),
        delivery(settings),
        ConversationRepository(settings.CONVERSATIONS_TABLE, settings.MESSAGES_TABLE),
        NotificationQueue(settings.NOTIFICATION_QUEUE_URL),
        RingTimeoutQueue(settings.RING_TIMEOUT_QUEUE_URL),
        limits=CallLimits(
            ring_timeout_seconds=settings.RING_TIMEOUT_SECONDS,
            max_participants=settings.MAX_CALL_PARTICIPANTS,
        ),
        ice_servers=ice_servers,
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
        starts_per_user=settings.UPLOAD_START_LIMIT_PER_USER,
        start_window_seconds=settings.UPLOAD_START_WINDOW_SECONDS,
        min_bytes_per_second=settings.UPLOAD_MIN_BYTES_PER_SECOND,
    )
    return UploadRepository(settings.UPLOADS_TABLE), ObjectStore(settings.UPLOADS_BUCKET), limits


def uploads(settings: UploadSettings) -> UploadService:
    from switchboard.uploads import UploadService

    repository, store, limits = _upload_parts(settings)
    return UploadService(
        repository,
        store,
        delivery(settings),
        limits,
        ConversationRepository(settings.CONVERSATIONS_TABLE, settings.MESSAGES_TABLE),
        counters=RateLimiter(settings.RATE_LIMITS_TABLE),
    )


def upload_processor(settings: UploadSettings) -> UploadProcessor:
    from switchboard.uploads import UploadProcessor

    repository, store, limits = _upload_parts(settings)
    return UploadProcessor(repository, store, delivery(settings), limits)
