"""What people do in the Telegram app: send, edit, press inline buttons.

These are the inputs of the emulated world (the Bot API only lets bots react to them).
Misuse (unknown user, message of somebody else, no such button) raises ``ValueError``
with an explanation, because it is a bug in the test or console, not a Telegram error.
"""

from __future__ import annotations

import copy
from typing import Any

from .api_send import build_poll
from .files import STICKER_PLACEHOLDER, FileStore
from .models import ApiError, ChatRecord, JsonDict, StoredMessage, UserAccount
from .state import World

FileArg = bytes | tuple[str, bytes, str]
"""Raw bytes, or ``(file name, bytes, mime type)``."""

FILE_KINDS = ("photo", "document", "audio", "voice", "video", "video_note", "animation")
_DEFAULT_NAMES = {
    "document": "file.bin",
    "audio": "audio.mp3",
    "video": "video.mp4",
    "animation": "animation.mp4",
}
_DICE_FACES = {"🎲": 6, "🎯": 6, "🎳": 6, "🏀": 5, "⚽": 5, "🎰": 64}


def build_user_content(
    world: World,
    *,
    text: str | None = None,
    caption: str | None = None,
    files: dict[str, FileArg | None] | None = None,
    sticker: str | None = None,
    location: tuple[float, float] | None = None,
    venue: JsonDict | None = None,
    contact: JsonDict | None = None,
    poll: JsonDict | None = None,
    dice: str | None = None,
    media_group_id: str | None = None,
) -> JsonDict:
    """The Message fields of what a user sends; exactly one kind of content."""
    media = [(kind, value) for kind, value in (files or {}).items() if value is not None]
    extras = {
        "sticker": sticker,
        "location": location,
        "venue": venue,
        "contact": contact,
        "poll": poll,
        "dice": dice,
    }
    attachments = len(media) + sum(value is not None for value in extras.values())
    if attachments > 1:
        raise ValueError("a message carries at most one attachment")
    if text is not None and attachments:
        raise ValueError("text goes with plain messages; use caption= with media")
    if not attachments and not (text and text.strip()):
        raise ValueError("a message needs non-empty text or an attachment")
    content: JsonDict = {}
    if text is not None:
        content["text"] = text
    for kind, value in media:
        if kind not in FILE_KINDS:
            raise ValueError(f"unknown media kind {kind!r}")
        content.update(_file_content(world.files, kind, value))
    if caption:
        if not media or media[0][0] == "video_note":
            raise ValueError("caption needs a photo, document, audio, voice, video or animation")
        content["caption"] = caption
    if sticker is not None:
        stored = world.files.add("sticker", STICKER_PLACEHOLDER, width=512, height=512)
        content.update(world.files.content(stored, {"emoji": sticker}))
    content.update(_non_file_content(world, location, venue, contact, poll, dice))
    if media_group_id is not None:
        content["media_group_id"] = str(media_group_id)
    return content


def _file_content(files: FileStore, kind: str, value: FileArg) -> JsonDict:
    if isinstance(value, bytes):
        name, data, mime = _DEFAULT_NAMES.get(kind), value, None
    else:
        name, data, mime = value
    if not data:
        raise ValueError(f"{kind} bytes are empty")
    stored = files.add(kind, data, mime_type=mime or None, file_name=name)
    return files.content(stored)


def _non_file_content(
    world: World,
    location: tuple[float, float] | None,
    venue: JsonDict | None,
    contact: JsonDict | None,
    poll: JsonDict | None,
    dice: str | None,
) -> JsonDict:
    if location is not None:
        return {"location": {"latitude": float(location[0]), "longitude": float(location[1])}}
    if venue is not None:
        where = venue.get("location") or {
            "latitude": venue["latitude"],
            "longitude": venue["longitude"],
        }
        body = {k: v for k, v in venue.items() if k not in ("latitude", "longitude")}
        return {"venue": {**body, "location": where}, "location": where}
    if contact is not None:
        if not contact.get("phone_number") or not contact.get("first_name"):
            raise ValueError("contact needs phone_number and first_name")
        return {"contact": dict(contact)}
    if poll is not None:
        fields = {k: v for k, v in poll.items() if k not in ("question", "options")}
        try:
            built = build_poll(
                str(6_000_000_000_000_000_000 + world.serial()),
                str(poll.get("question", "")),
                list(poll.get("options", [])),
                **fields,
            )
        except ApiError as error:
            raise ValueError(error.description) from None
        return {"poll": built}
    if dice is not None:
        faces = _DICE_FACES.get(dice, 6)
        return {"dice": {"emoji": dice, "value": world.serial() % faces + 1}}
    return {}


def user_chat(
    world: World,
    user: UserAccount,
    chat_id: int,
    bot_token: str | None,
    message_id: int | None = None,
    wanted: str = "message",
) -> ChatRecord:
    """The chat a user acts in: a group by id, or one of their private chats with bots.

    A user's private chats with different bots share the chat id (the user's id); without
    ``bot_token`` the chat holding ``message_id`` is chosen if that is unambiguous.
    """
    if chat_id < 0:
        group = world.groups.get(chat_id)
        if group is None:
            raise ValueError(f"unknown group {chat_id}")
        if user.id not in group.member_ids:
            raise ValueError(f"user {user.id} is not a member of group {chat_id}")
        return group
    if chat_id != user.id:
        raise ValueError(f"a private chat of user {user.id} has chat id {user.id}, not {chat_id}")
    if bot_token is not None:
        chat = world.private_chat(world.bot(bot_token).id, user.id)
        if chat is None:
            raise ValueError(f"user {user.id} has no chat with that bot")
        return chat
    chats = world.chats_with_id(chat_id)
    if message_id is not None:
        chats = [chat for chat in chats if world.get_message(chat, message_id) is not None]
    if len(chats) != 1:
        raise ValueError(
            f"{wanted} {message_id} is in {len(chats)} private chats of user {user.id}; "
            "pass bot_token to say which"
        )
    return chats[0]


def send(
    world: World,
    user_id: int,
    content: JsonDict,
    *,
    bot_token: str | None = None,
    chat_id: int | None = None,
    message_thread_id: int | None = None,
    reply_to_message_id: int | None = None,
) -> JsonDict:
    """A user sends a message; bots that see the chat get a ``message`` update."""
    user = world.user(user_id)
    if (bot_token is None) == (chat_id is None):
        raise ValueError("pass bot_token (private chat with that bot) or chat_id (group)")
    if bot_token is not None:
        bot = world.bot(bot_token)
        chat = world.private_chat(bot.id, user.id, create=True)
        assert chat is not None
        user.blocked_bots.discard(bot.id)  # writing to a blocked bot unblocks it in the app
    else:
        chat = user_chat(world, user, int(chat_id or 0), None)
    reply_to: StoredMessage | None = None
    if reply_to_message_id is not None:
        reply_to = world.get_message(chat, reply_to_message_id)
        if reply_to is None:
            raise ValueError(f"no message {reply_to_message_id} in chat {chat.id} to reply to")
        if message_thread_id is None:
            message_thread_id = reply_to.thread_id
    try:
        thread_id = world.send_thread(chat, message_thread_id, by_bot=False)
    except ApiError as error:
        raise ValueError(
            f"cannot send to thread {message_thread_id}: {error.description}"
        ) from None
    message = world.add_message(
        chat,
        sender=user.user_dict(),
        sender_bot_id=None,
        content=content,
        thread_id=thread_id,
        reply_to=reply_to,
    )
    world.fan_out(chat, "message", message)
    return copy.deepcopy(message.data)


def edit(
    world: World,
    user_id: int,
    chat_id: int,
    message_id: int,
    *,
    text: str | None = None,
    caption: str | None = None,
    bot_token: str | None = None,
) -> JsonDict:
    """A user edits their message; bots that see the chat get ``edited_message``."""
    user = world.user(user_id)
    chat = user_chat(world, user, chat_id, bot_token, message_id)
    message = world.get_message(chat, message_id)
    if message is None:
        raise ValueError(f"no message {message_id} in chat {chat_id}")
    if message.sender_id != user.id:
        raise ValueError(f"message {message_id} was not sent by user {user.id}")
    if text is not None:
        if "text" not in message.data or not text.strip():
            raise ValueError("only text messages get new non-empty text; use caption=")
        message.data.pop("entities", None)
        message.data["text"] = text
    elif caption is not None:
        if "text" in message.data:
            raise ValueError("a text message has no caption; use text=")
        message.data.pop("caption_entities", None)
        message.data.pop("caption", None)
        if caption:
            message.data["caption"] = caption
    else:
        raise ValueError("pass text= or caption=")
    world.publish_edit(chat, message)
    world.fan_out(chat, "edited_message", message)
    return copy.deepcopy(message.data)


def react(
    world: World,
    user_id: int,
    chat_id: int,
    message_id: int,
    emoji: str,
    *,
    bot_token: str | None = None,
) -> JsonDict:
    """A user sets (``""``: takes away) their reaction on a message of a private chat with
    a bot, or of a group; the bot (in a group: every bot in it, which Telegram limits to
    administrators) gets ``message_reaction`` — only if it asked for it in
    ``allowed_updates`` (https://core.telegram.org/bots/api#messagereactionupdated; the
    update names no topic). A bot's own reactions produce no update."""
    user = world.user(user_id)
    chat = user_chat(world, user, chat_id, bot_token, message_id)
    message = world.get_message(chat, message_id)
    if message is None or (chat.bot_id is None and not chat.is_group):
        raise ValueError(f"no message {message_id} in chat {chat_id}")
    old = message.reactions.get(user.id, [])
    new = [{"type": "emoji", "emoji": emoji}] if emoji else []
    message.reactions[user.id] = new
    update: JsonDict = {
        "chat": chat.chat_dict(),
        "message_id": message_id,
        "user": user.user_dict(),
        "date": int(message.data.get("date", 0)) + 1,
        "old_reaction": old,
        "new_reaction": new,
    }
    for bot_id in chat.bot_ids if chat.is_group else [chat.bot_id or 0]:
        if bot_id in world.updates:
            world.updates[bot_id].push("message_reaction", update)
    return update


def _callback_buttons(message: StoredMessage) -> list[str]:
    rows: list[Any] = (message.data.get("reply_markup") or {}).get("inline_keyboard", [])
    return [str(b["callback_data"]) for row in rows for b in row if "callback_data" in b]


def press(
    world: World,
    user_id: int,
    chat_id: int,
    message_id: int,
    callback_data: str,
    *,
    bot_token: str | None = None,
) -> JsonDict:
    """A user presses an inline button; the bot that sent the message gets the query."""
    user = world.user(user_id)
    chat = user_chat(world, user, chat_id, bot_token, message_id)
    message = world.get_message(chat, message_id)
    if message is None:
        raise ValueError(f"no message {message_id} in chat {chat_id}")
    buttons = _callback_buttons(message)
    if callback_data not in buttons or message.sender_bot_id is None:
        raise ValueError(
            f"message {message_id} has no inline button with callback_data "
            f"{callback_data!r}; it has {buttons}"
        )
    bot_id = message.sender_bot_id
    query_id = str(4_000_000_000_000_000_000 + world.serial())
    query: JsonDict = {
        "id": query_id,
        "from": user.user_dict(),
        "message": world.render(message.data, bot_id),
        "chat_instance": str((chat.id * 2_654_435_761) % 2**63),
        "data": callback_data,
    }
    world.callbacks[query_id] = {
        "bot_id": bot_id,
        "chat_key": chat.key,
        "message_id": message_id,
        "answer": None,
    }
    world.updates[bot_id].push("callback_query", query)
    return query
