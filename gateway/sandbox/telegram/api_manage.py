"""Bot API methods that change existing things: edits, deletion, reactions, pins, topics."""

from __future__ import annotations

import time
from typing import Any

from gateway.reactions import STANDARD

from .ctx import Ctx, Handler, caption_content, chat_param, reply_markup, text_content
from .files import KINDS
from .models import (
    DEFAULT_ICON_COLOR,
    NOT_MODIFIED,
    ChatRecord,
    JsonDict,
    StoredMessage,
    Topic,
    bad_request,
)

_TOPIC_NOT_MODIFIED = "TOPIC_NOT_MODIFIED"
_MAX_TOPIC_NAME = 128


def _edit_target(ctx: Ctx) -> tuple[ChatRecord, StoredMessage]:
    if ctx.params.has("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = chat_param(ctx)
    message = ctx.world.get_message(chat, ctx.params.req_int("message_id"))
    if message is None:
        raise bad_request("message to edit not found")
    if message.sender_bot_id != ctx.bot.id:
        raise bad_request("message can't be edited")
    ctx.world.check_can_send(ctx.bot, chat)
    return chat, message


def _apply_edit(
    ctx: Ctx,
    chat: ChatRecord,
    message: StoredMessage,
    content: JsonDict,
    replaced: tuple[str, ...],
) -> JsonDict:
    """Replace fields ``replaced`` by ``content`` and the inline keyboard by the new one.

    As in Telegram, omitting ``reply_markup`` removes the inline keyboard, and an edit that
    changes nothing is a 400 "message is not modified".
    """
    markup = reply_markup(ctx)
    new_markup = markup if markup is not None and "inline_keyboard" in markup else None
    current = {key: message.data.get(key) for key in replaced}
    wanted = {key: content.get(key) for key in replaced}
    if current == wanted and message.data.get("reply_markup") == new_markup:
        raise bad_request(NOT_MODIFIED)
    ctx.flood.check(ctx.bot.id, chat.key, chat.is_group)
    for key in replaced:
        message.data.pop(key, None)
    message.data.update(content)
    if new_markup is None:
        message.data.pop("reply_markup", None)
    else:
        message.data["reply_markup"] = new_markup
    if ctx.params.has("parse_mode"):
        message.parse_mode = ctx.params.opt_str("parse_mode")
    ctx.world.publish_edit(chat, message)
    return ctx.world.render(message.data, ctx.bot.id)


async def edit_message_text(ctx: Ctx) -> JsonDict:
    """editMessageText."""
    chat, message = _edit_target(ctx)
    if "text" not in message.data:
        raise bad_request("there is no text in the message to edit")
    content = text_content(ctx)
    return _apply_edit(ctx, chat, message, content, ("text", "entities"))


async def edit_message_caption(ctx: Ctx) -> JsonDict:
    """editMessageCaption; an absent caption removes it."""
    chat, message = _edit_target(ctx)
    if not any(kind in message.data for kind in KINDS if kind not in ("sticker", "video_note")):
        raise bad_request("there is no caption in the message to edit")
    content = caption_content(ctx)
    return _apply_edit(ctx, chat, message, content, ("caption", "caption_entities"))


async def edit_message_reply_markup(ctx: Ctx) -> JsonDict:
    """editMessageReplyMarkup."""
    chat, message = _edit_target(ctx)
    return _apply_edit(ctx, chat, message, {}, ())


DELETE_WITHIN = 48 * 3600


async def delete_message(ctx: Ctx) -> bool:
    """deleteMessage: own messages anywhere, users' messages in private chats and (as
    an admin) in groups."""
    chat = chat_param(ctx)
    message = ctx.world.get_message(chat, ctx.params.req_int("message_id"))
    if message is None:
        raise bad_request("message to delete not found")
    if "forum_topic_created" in message.data:
        raise bad_request("message can't be deleted")
    # "A message can only be deleted if it was sent less than 48 hours ago"
    # (https://core.telegram.org/bots/api#deletemessage).
    if time.time() - int(message.data.get("date", 0)) > DELETE_WITHIN:
        raise bad_request("message can't be deleted for everyone")
    ctx.world.delete_message(chat, message)
    return True


async def set_message_reaction(ctx: Ctx) -> bool:
    """setMessageReaction: replaces the bot's reactions on a message."""
    chat = chat_param(ctx)
    message = ctx.world.get_message(chat, ctx.params.req_int("message_id"))
    if message is None:
        raise bad_request("MESSAGE_ID_INVALID")
    reaction = ctx.params.opt_json("reaction") or []
    if not isinstance(reaction, list) or not all(
        isinstance(item, dict) and item.get("type") in ("emoji", "custom_emoji", "paid")
        for item in reaction
    ):
        raise bad_request("REACTION_INVALID")
    if any(item["type"] == "emoji" and item.get("emoji") not in STANDARD for item in reaction):
        raise bad_request("REACTION_INVALID")  # only Telegram's standard reactions
    message.reactions[ctx.bot.id] = reaction
    ctx.world.events.emit(
        "reaction",
        chat,
        message_id=message.message_id,
        user_id=ctx.bot.id,
        reaction=reaction,
    )
    return True


async def pin_chat_message(ctx: Ctx) -> bool:
    """pinChatMessage; like Telegram it posts a ``pinned_message`` service message."""
    chat = chat_param(ctx)
    message = ctx.world.get_message(chat, ctx.params.req_int("message_id"))
    if message is None:
        raise bad_request("message to pin not found")
    if message.message_id not in chat.pinned_ids:
        chat.pinned_ids.append(message.message_id)
    pinned = {k: v for k, v in message.data.items() if k != "reply_to_message"}
    ctx.world.add_message(
        chat,
        sender=ctx.bot.user_dict(),
        sender_bot_id=ctx.bot.id,
        content={"pinned_message": pinned},
        thread_id=message.thread_id,
    )
    return True


async def unpin_chat_message(ctx: Ctx) -> bool:
    """unpinChatMessage: a given message, or the most recently pinned one."""
    chat = chat_param(ctx)
    message_id = ctx.params.opt_int("message_id")
    if message_id is None:
        if chat.pinned_ids:
            chat.pinned_ids.pop()
        return True
    if ctx.world.get_message(chat, message_id) is None:
        raise bad_request("message to unpin not found")
    chat.pinned_ids = [i for i in chat.pinned_ids if i != message_id]
    return True


def _forum(ctx: Ctx) -> ChatRecord:
    chat = chat_param(ctx)
    if not chat.is_forum:
        raise bad_request("the chat is not a forum")
    return chat


def _topic(ctx: Ctx) -> tuple[ChatRecord, Topic]:
    chat = _forum(ctx)
    topic = chat.topics.get(ctx.params.req_int("message_thread_id"))
    if topic is None or topic.deleted:
        raise bad_request("TOPIC_ID_INVALID")
    return chat, topic


def _topic_name(value: str | None) -> str:
    if value is None or not value.strip():
        raise bad_request("TOPIC_TITLE_EMPTY")
    if len(value) > _MAX_TOPIC_NAME:
        raise bad_request("TOPIC_TITLE_TOO_LONG")
    return value


async def create_forum_topic(ctx: Ctx) -> JsonDict:
    """createForumTopic: counts against the group's flood limit like a message."""
    chat = _forum(ctx)
    name = _topic_name(ctx.params.opt_str("name"))
    icon_color = ctx.params.opt_int("icon_color") or DEFAULT_ICON_COLOR
    ctx.flood.check(ctx.bot.id, chat.key, chat.is_group)
    topic = ctx.world.create_topic(
        chat,
        name,
        sender=ctx.bot.user_dict(),
        sender_bot_id=ctx.bot.id,
        icon_color=icon_color,
        icon_custom_emoji_id=ctx.params.opt_str("icon_custom_emoji_id"),
    )
    return topic.forum_topic()


async def edit_forum_topic(ctx: Ctx) -> bool:
    """editForumTopic: new name and/or custom emoji icon (counts toward the group's
    message limit, as every message the bot sends there does)."""
    chat, topic = _topic(ctx)
    ctx.flood.check(ctx.bot.id, chat.key, chat.is_group)
    edited: dict[str, Any] = {}
    if ctx.params.has("name"):
        name = _topic_name(ctx.params.opt_str("name"))
        if name != topic.name:
            edited["name"] = topic.name = name
    if ctx.params.has("icon_custom_emoji_id"):
        emoji_id = ctx.params.opt_str("icon_custom_emoji_id") or None
        if emoji_id != topic.icon_custom_emoji_id:
            topic.icon_custom_emoji_id = emoji_id
            edited["icon_custom_emoji_id"] = emoji_id or ""
    if not edited:
        raise bad_request(_TOPIC_NOT_MODIFIED)
    _topic_service(ctx, chat, topic, {"forum_topic_edited": edited})
    return True


async def close_forum_topic(ctx: Ctx) -> bool:
    """closeForumTopic: bots then get 400 TOPIC_CLOSED when sending there."""
    chat, topic = _topic(ctx)
    if topic.closed:
        raise bad_request(_TOPIC_NOT_MODIFIED)
    topic.closed = True
    _topic_service(ctx, chat, topic, {"forum_topic_closed": {}})
    return True


async def reopen_forum_topic(ctx: Ctx) -> bool:
    """reopenForumTopic."""
    chat, topic = _topic(ctx)
    if not topic.closed:
        raise bad_request(_TOPIC_NOT_MODIFIED)
    topic.closed = False
    _topic_service(ctx, chat, topic, {"forum_topic_reopened": {}})
    return True


async def delete_forum_topic(ctx: Ctx) -> bool:
    """deleteForumTopic: the topic and all its messages disappear."""
    chat, topic = _topic(ctx)
    ctx.world.delete_topic(chat, topic)
    return True


def _topic_service(ctx: Ctx, chat: ChatRecord, topic: Topic, service: JsonDict) -> None:
    ctx.world.topic_changed(
        chat, topic, sender=ctx.bot.user_dict(), sender_bot_id=ctx.bot.id, service=service
    )


HANDLERS: dict[str, Handler] = {
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "setMessageReaction": set_message_reaction,
    "pinChatMessage": pin_chat_message,
    "unpinChatMessage": unpin_chat_message,
    "createForumTopic": create_forum_topic,
    "editForumTopic": edit_forum_topic,
    "closeForumTopic": close_forum_topic,
    "reopenForumTopic": reopen_forum_topic,
    "deleteForumTopic": delete_forum_topic,
}
"""Modifying methods by their canonical Bot API name."""
