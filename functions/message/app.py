"""Messaging actions: conversations, messages, receipts, sync/history, typing, presence,
preferences and notifications; edits, deletes, reactions, threads, the change stream and
mute. Each handler is one call into MessagingService (or PreferencesService, or
MessageOpsService)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.config import MessagingSettings
from switchboard.observability import logger
from switchboard.protocol import EmptyData
from switchboard.router import Request, WebSocketRouter
from switchboard.wire import membership as membership_wire
from switchboard.wire import message_ops as ops_wire
from switchboard.wire import messaging as wire

settings = MessagingSettings.from_env()
service = services.messaging(settings)
preferences = services.preferences(settings)
membership = services.membership(settings, service)
message_ops = services.message_ops(settings, service)
router = WebSocketRouter(
    {**wire.REPLIES, **membership_wire.REPLIES, **ops_wire.REPLIES},
    refreshed_token_exp=service.delivery.connections.refreshed_token_exp,
)


@router.action("conversation:create", wire.ConversationCreate)
def create_conversation(request: Request[wire.ConversationCreate]) -> wire.ConversationCreated:
    return service.create_conversation(request.caller, request.data)


@router.action("conversation:list", wire.ConversationList)
def list_conversations(request: Request[wire.ConversationList]) -> wire.ConversationPage:
    return service.list_conversations(request.caller, request.data)


@router.action("message:send", wire.MessageSend)
def send(request: Request[wire.MessageSend]) -> wire.MessageSent:
    return service.send(request.caller, request.data)


@router.action("message:ack", wire.Cursor)
def ack(request: Request[wire.Cursor]) -> wire.CursorMoved:
    return service.advance(request.caller, request.data, "ackedSeq")


@router.action("message:read", wire.Cursor)
def read(request: Request[wire.Cursor]) -> wire.CursorMoved:
    return service.advance(request.caller, request.data, "readSeq")


@router.action("message:sync", wire.MessageSync)
def sync(request: Request[wire.MessageSync]) -> wire.SyncResult:
    return service.sync(request.caller, request.data)


@router.action("message:history", wire.MessageHistory)
def history(request: Request[wire.MessageHistory]) -> wire.HistoryPage:
    return service.history(request.caller, request.data)


@router.action("typing:start", wire.Typing)
def typing_start(request: Request[wire.Typing]) -> wire.TypingSent:
    return service.typing(request.caller, request.data, "start")


@router.action("typing:stop", wire.Typing)
def typing_stop(request: Request[wire.Typing]) -> wire.TypingSent:
    return service.typing(request.caller, request.data, "stop")


@router.action("presence:query", wire.PresenceQuery)
def presence(request: Request[wire.PresenceQuery]) -> wire.PresenceList:
    return service.presence(request.caller, request.data)


@router.action("preferences:get", EmptyData)
def get_preferences(request: Request[EmptyData]) -> wire.PreferencesView:
    return preferences.get(request.caller)


@router.action("preferences:set", wire.PreferencesSet)
def set_preferences(request: Request[wire.PreferencesSet]) -> wire.PreferencesView:
    return preferences.set(request.caller, request.data)


@router.action("preferences:verify-email", wire.PreferencesVerifyEmail)
def verify_email(request: Request[wire.PreferencesVerifyEmail]) -> wire.PreferencesView:
    return preferences.verify_email(request.caller, request.data)


@router.action("notification:list", wire.NotificationList)
def list_notifications(request: Request[wire.NotificationList]) -> wire.NotificationPage:
    return service.list_notifications(request.caller, request.data)


@router.action("notification:read", wire.NotificationRead)
def read_notifications(request: Request[wire.NotificationRead]) -> wire.NotificationsMarked:
    return service.read_notifications(request.caller, request.data)


@router.action("message:edit", ops_wire.MessageEdit)
def edit(request: Request[ops_wire.MessageEdit]) -> ops_wire.MessageUpdated:
    return message_ops.edit(request.caller, request.data)


@router.action("message:delete", ops_wire.MessageDelete)
def delete(request: Request[ops_wire.MessageDelete]) -> ops_wire.MessageDeleted:
    return message_ops.delete(request.caller, request.data)


@router.action("message:react", ops_wire.MessageReact)
def react(request: Request[ops_wire.MessageReact]) -> ops_wire.MessageReactions:
    return message_ops.react(request.caller, request.data)


@router.action("message:changes", ops_wire.MessageChanges)
def changes(request: Request[ops_wire.MessageChanges]) -> ops_wire.ChangesPage:
    return message_ops.changes_after(request.caller, request.data)


@router.action("thread:history", ops_wire.ThreadHistory)
def thread_history(request: Request[ops_wire.ThreadHistory]) -> ops_wire.ThreadPage:
    return message_ops.thread_history(request.caller, request.data)


@router.action("conversation:mute", ops_wire.ConversationMute)
def mute(request: Request[ops_wire.ConversationMute]) -> ops_wire.MuteState:
    return message_ops.mute(request.caller, request.data)


# ---------------------------------------------------------------- consent and membership
@router.action("conversation:accept", membership_wire.ConversationRef)
def accept(request: Request[membership_wire.ConversationRef]) -> membership_wire.ConsentChanged:
    return membership.accept(request.caller, request.data)


@router.action("conversation:decline", membership_wire.ConversationRef)
def decline(request: Request[membership_wire.ConversationRef]) -> membership_wire.ConsentChanged:
    return membership.decline(request.caller, request.data)


@router.action("conversation:leave", membership_wire.ConversationRef)
def leave(request: Request[membership_wire.ConversationRef]) -> membership_wire.MembershipChanged:
    return membership.leave(request.caller, request.data)


@router.action("conversation:add-members", membership_wire.MembersAdd)
def add_members(
    request: Request[membership_wire.MembersAdd],
) -> membership_wire.MembershipChanged:
    return membership.add_members(request.caller, request.data)


@router.action("conversation:remove-member", membership_wire.MemberRemove)
def remove_member(
    request: Request[membership_wire.MemberRemove],
) -> membership_wire.MembershipChanged:
    return membership.remove_member(request.caller, request.data)


@router.action("conversation:set-role", membership_wire.RoleSet)
def set_role(request: Request[membership_wire.RoleSet]) -> membership_wire.MembershipChanged:
    return membership.set_role(request.caller, request.data)


@router.action("conversation:set-title", membership_wire.TitleSet)
def set_title(request: Request[membership_wire.TitleSet]) -> membership_wire.MembershipChanged:
    return membership.set_title(request.caller, request.data)


@router.action("user:block", membership_wire.UserRef)
def block(request: Request[membership_wire.UserRef]) -> membership_wire.BlockChanged:
    return membership.block(request.caller, request.data)


@router.action("user:unblock", membership_wire.UserRef)
def unblock(request: Request[membership_wire.UserRef]) -> membership_wire.BlockChanged:
    return membership.unblock(request.caller, request.data)


@router.action("user:blocks", EmptyData)
def blocks(request: Request[EmptyData]) -> membership_wire.BlockList:
    return membership.list_blocks(request.caller)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return router.resolve(event)
