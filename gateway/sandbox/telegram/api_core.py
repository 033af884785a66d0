"""Bot API methods about the bot itself, its updates, chats, members, files and callbacks."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from .ctx import Ctx, Handler, chat_param
from .models import JsonDict, bad_request
from .updates import WebhookConfig

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
    "can_manage_topics",
    "can_send_welcome_messages",
)
_NO_GIFTS = {
    "unlimited_gifts": False,
    "limited_gifts": False,
    "unique_gifts": False,
    "premium_subscription": False,
    "gifts_from_channels": False,
}


async def get_me(ctx: Ctx) -> JsonDict:
    """getMe."""
    return ctx.bot.me_dict()


async def get_user_profile_photos(ctx: Ctx) -> JsonDict:
    """getUserProfilePhotos: the user's photos, each as its PhotoSize list."""
    user = ctx.world.users.get(ctx.params.req_int("user_id"))
    if user is None:
        raise bad_request("user not found")
    offset = ctx.params.opt_int("offset") or 0
    limit = ctx.params.opt_int("limit") or 100
    if not 1 <= limit <= 100:
        raise bad_request("LIMIT_INVALID")
    photos = user.profile_photos[offset : offset + limit]
    return {
        "total_count": len(user.profile_photos),
        "photos": [ctx.world.files.photo_sizes(p, ctx.bot.id) for p in photos],
    }


async def log_out(ctx: Ctx) -> bool:
    """logOut / close: nothing to release in an emulator."""
    return True


async def get_updates(ctx: Ctx) -> list[JsonDict]:
    """getUpdates with offset confirmation and long polling."""
    params = ctx.params
    allowed = params.opt_json("allowed_updates")
    if allowed is not None and not isinstance(allowed, list):
        raise bad_request("can't parse allowed_updates JSON array")
    limit = params.opt_int("limit")
    return await ctx.world.updates[ctx.bot.id].get_updates(
        offset=params.opt_int("offset"),
        limit=100 if limit is None else limit,
        timeout=float(params.opt_int("timeout") or 0),
        allowed=allowed,
    )


def webhook_url_allowed(url: str, allow_remote: bool) -> str | None:
    """Why ``url`` cannot be a webhook (``None`` if it can).

    The emulator makes no network connections beyond loopback unless told otherwise.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "bad webhook: An HTTPS URL must be provided for webhook"
    if allow_remote or parts.hostname in _LOOPBACK_NAMES:
        return None
    try:
        if ipaddress.ip_address(parts.hostname).is_loopback:
            return None
    except ValueError:
        pass
    return f"bad webhook: Failed to resolve host: {parts.hostname} is not a loopback address"


async def set_webhook(ctx: Ctx) -> bool:
    """setWebhook; an empty url removes the webhook, as in Telegram."""
    params = ctx.params
    updates = ctx.world.updates[ctx.bot.id]
    url = params.opt_str("url") or ""
    drop = params.opt_bool("drop_pending_updates")
    if not url:
        updates.delete_webhook(drop)
        return True
    problem = webhook_url_allowed(url, ctx.world.allow_remote_webhooks)
    if problem:
        raise bad_request(problem)
    secret = params.opt_str("secret_token")
    if secret is not None and not _SECRET_RE.match(secret):
        raise bad_request("secret token contains unallowed characters")
    allowed = params.opt_json("allowed_updates")
    if allowed is not None and not isinstance(allowed, list):
        raise bad_request("can't parse allowed_updates JSON array")
    updates.set_allowed(allowed)
    config = WebhookConfig(
        url=url,
        secret_token=secret,
        max_connections=params.opt_int("max_connections") or 40,
        ip_address=params.opt_str("ip_address"),
    )
    updates.set_webhook(config, drop)
    return True


async def delete_webhook(ctx: Ctx) -> bool:
    """deleteWebhook."""
    ctx.world.updates[ctx.bot.id].delete_webhook(ctx.params.opt_bool("drop_pending_updates"))
    return True


async def get_webhook_info(ctx: Ctx) -> JsonDict:
    """getWebhookInfo."""
    return ctx.world.updates[ctx.bot.id].webhook_info()


async def get_chat(ctx: Ctx) -> JsonDict:
    """getChat: a ChatFullInfo with the fields aiogram requires."""
    chat = chat_param(ctx)
    info: JsonDict = {
        **chat.chat_dict(),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": dict(_NO_GIFTS),
    }
    if chat.pinned_ids:
        pinned = chat.messages[chat.pinned_ids[-1]].data
        info["pinned_message"] = ctx.world.render(pinned, ctx.bot.id)
    return info


async def get_chat_member(ctx: Ctx) -> JsonDict:
    """getChatMember: bots are administrators, the first member is the creator."""
    chat = chat_param(ctx)
    user_id = ctx.params.req_int("user_id")
    world = ctx.world
    if user_id in world.bots:
        bot = world.bots[user_id]
        if chat.is_group and user_id in chat.bot_ids:
            rights: dict[str, Any] = dict.fromkeys(_ADMIN_RIGHTS, True)
            return {
                "status": "administrator",
                "user": bot.user_dict(),
                "can_be_edited": False,
                "is_anonymous": False,
                "can_promote_members": False,
                **rights,
            }
        status = "member" if chat.bot_id == user_id else "left"
        return {"status": status, "user": bot.user_dict()}
    user = world.users.get(user_id)
    if user is None:
        raise bad_request("PARTICIPANT_ID_INVALID")
    if not chat.is_group:
        return {"status": "member" if chat.id == user_id else "left", "user": user.user_dict()}
    if chat.member_ids and chat.member_ids[0] == user_id:
        return {"status": "creator", "user": user.user_dict(), "is_anonymous": False}
    status = "member" if user_id in chat.member_ids else "left"
    return {"status": status, "user": user.user_dict()}


async def get_file(ctx: Ctx) -> JsonDict:
    """getFile: only the bot's own file ids are accepted."""
    file_id = ctx.params.req_str("file_id", "wrong file identifier/HTTP URL specified")
    stored = ctx.world.files.resolve(file_id, ctx.bot.id)
    return ctx.world.files.file_object(stored, ctx.bot.id)


async def answer_callback_query(ctx: Ctx) -> bool:
    """answerCallbackQuery: each query can be answered once."""
    query_id = ctx.params.req_str("callback_query_id")
    record = ctx.world.callbacks.get(query_id)
    if record is None or record["bot_id"] != ctx.bot.id or record.get("answer") is not None:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    answer: JsonDict = {"show_alert": ctx.params.opt_bool("show_alert")}
    for key in ("text", "url"):
        if (value := ctx.params.opt_str(key)) is not None:
            answer[key] = value
    record["answer"] = answer
    chat = ctx.world.chat_by_key(record["chat_key"])
    if chat is not None:
        ctx.world.events.emit(
            "callback_answer",
            chat,
            callback_query_id=query_id,
            message_id=record["message_id"],
            answer=answer,
        )
    return True


async def send_chat_action(ctx: Ctx) -> bool:
    """sendChatAction: validated like a message, shown in the console as an event."""
    chat = chat_param(ctx, sending=True)
    ctx.world.check_can_send(ctx.bot, chat)
    thread_id = ctx.world.send_thread(chat, ctx.params.opt_int("message_thread_id"), by_bot=True)
    action = ctx.params.req_str("action")
    if action not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    ctx.world.events.emit("chat_action", chat, action=action, message_thread_id=thread_id)
    return True


HANDLERS: dict[str, Handler] = {
    "getMe": get_me,
    "getUserProfilePhotos": get_user_profile_photos,
    "logOut": log_out,
    "close": log_out,
    "getUpdates": get_updates,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "getChat": get_chat,
    "getChatMember": get_chat_member,
    "getFile": get_file,
    "answerCallbackQuery": answer_callback_query,
    "sendChatAction": send_chat_action,
}
"""Account, update, chat-info and callback methods by their canonical Bot API name."""
