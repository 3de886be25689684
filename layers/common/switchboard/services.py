"""Builds the services of a function from its settings (one place, so every function wires
repositories, gateway and queues the same way). Nothing here runs at import time."""

from __future__ import annotations

from switchboard.config import DeliverySettings, MessagingSettings, NotificationSettings
from switchboard.dal.connections import ConnectionRepository
from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.notifications import NotificationRepository
from switchboard.dal.ratelimits import RateLimiter, WindowLimiter
from switchboard.dal.users import UserRepository
from switchboard.delivery import Delivery
from switchboard.gateway import ManagementApi
from switchboard.messaging import Limits, MessagingService
from switchboard.notifications import Mailer, NotificationQueue, NotificationService
from switchboard.presence import ConnectionEvents


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
    return MessagingService(
        conversations(settings),
        delivery(settings),
        NotificationQueue(settings.NOTIFICATION_QUEUE_URL),
        NotificationRepository(settings.NOTIFICATIONS_TABLE),
        WindowLimiter(settings.RATE_LIMITS_TABLE),
        RateLimiter(settings.RATE_LIMITS_TABLE),
        limits=Limits(
            max_body_chars=settings.MAX_BODY_CHARS,
            max_members=settings.MAX_MEMBERS,
            window_seconds=settings.RATE_WINDOW_SECONDS,
            sends_per_user=settings.SEND_LIMIT_PER_USER,
            sends_per_connection=settings.SEND_LIMIT_PER_CONNECTION,
            creates_per_user=settings.CREATE_LIMIT_PER_USER,
        ),
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
    )


def connection_events(settings: MessagingSettings) -> ConnectionEvents:
    return ConnectionEvents(conversations(settings), delivery(settings))
