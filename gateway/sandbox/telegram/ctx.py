"""What a Bot API method handler receives, and the checks most sending methods share.

Target chat, block state, topic, reply target, reply markup and length limits are
validated in the same order and with the same descriptions for every ``send*`` method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .faults import FloodLimiter
from .models import BotAccount, ChatRecord, JsonDict, StoredMessage, bad_request
from .state import World
from .wire import Params

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
_BAD_BUTTON = "can't parse inline keyboard button"
_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
    "web_app",
)


@dataclass
class Ctx:
    """One Bot API call being served."""

    world: World
    flood: FloodLimiter
    bot: BotAccount
    params: Params


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass
class Target:
    """Where a message is going: chat, topic and the message it replies to."""

    chat: ChatRecord
    thread_id: int | None
    reply_to: StoredMessage | None


def chat_param(ctx: Ctx, name: str = "chat_id", *, sending: bool = False) -> ChatRecord:
    """The chat named by parameter ``name`` (``chat_id`` by default)."""
    value = ctx.params.req_str(name)
    return ctx.world.chat_for_bot(ctx.bot, value, sending=sending)


def send_target(ctx: Ctx) -> Target:
    """Resolve and validate chat, topic and reply target of a sending method."""
    world = ctx.world
    chat = chat_param(ctx, sending=True)
    world.check_can_send(ctx.bot, chat)
    thread_id = world.send_thread(chat, ctx.params.opt_int("message_thread_id"), by_bot=True)
    reply_to = reply_target(ctx, chat)
    if reply_to is not None and thread_id is None and reply_to.thread_id is not None:
        # A reply without message_thread_id lands in the replied message's topic.
        thread_id = world.send_thread(chat, reply_to.thread_id, by_bot=True)
    return Target(chat, thread_id, reply_to)


def reply_target(ctx: Ctx, chat: ChatRecord) -> StoredMessage | None:
    """The message named by ``reply_parameters`` (or legacy ``reply_to_message_id``)."""
    params = ctx.params
    reply = params.opt_object("reply_parameters")
    if reply is not None:
        message_id = reply.get("message_id")
        allow = bool(reply.get("allow_sending_without_reply"))
        other_chat = reply.get("chat_id")
        if other_chat is not None and str(other_chat) != str(chat.id):
            if allow:
                return None
            raise bad_request("message to be replied not found")
    else:
        message_id = params.opt_int("reply_to_message_id")
        allow = params.opt_bool("allow_sending_without_reply")
    if message_id is None:
        return None
    try:
        found = ctx.world.get_message(chat, int(message_id))
    except (TypeError, ValueError):
        raise bad_request("invalid reply_parameters specified") from None
    if found is None and not allow:
        raise bad_request("message to be replied not found")
    return found


def reply_markup(ctx: Ctx) -> JsonDict | None:
    """The ``reply_markup`` object, with Telegram's inline keyboard checks."""
    markup = ctx.params.opt_object("reply_markup")
    if markup is None or "inline_keyboard" not in markup:
        return markup
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f"{_BAD_BUTTON}: field inline_keyboard must be an Array of Arrays")
    for row in rows:
        for button in row:
            # "Exactly one of the optional fields must be used to specify type of the
            # button" (https://core.telegram.org/bots/api#inlinekeyboardbutton).
            actions = (
                [k for k in _BUTTON_ACTIONS if button.get(k) is not None]
                if isinstance(button, dict)
                else []
            )
            if not actions or len(actions) > 1 or not button.get("text"):
                raise bad_request(
                    f"{_BAD_BUTTON}: Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not str(url).startswith(("https://", "http://", "tg://")):
                raise bad_request("BUTTON_URL_INVALID")
    return markup


def checked_entities(text: str, entities: Any) -> list[JsonDict]:
    """Entities as Telegram keeps them: offsets in UTF-16 code units; an entity that
    starts or ends inside a surrogate pair is refused; ones past the end are clipped
    (TDLib's fix_formatted_text does the same)."""
    units = text.encode("utf-16-le")
    size = len(units) // 2
    kept: list[JsonDict] = []
    for entity in entities if isinstance(entities, list) else []:
        offset, length = int(entity.get("offset", -1)), int(entity.get("length", 0))
        if offset < 0 or length <= 0 or offset >= size:
            continue
        length = min(length, size - offset)
        for edge in (offset, offset + length):
            if (
                edge < size
                and 0xDC00 <= int.from_bytes(units[2 * edge : 2 * edge + 2], "little") <= 0xDFFF
            ):
                raise bad_request(
                    "entity begins in a middle of a UTF-16 symbol at byte offset "
                    f"{len(units[: 2 * edge].decode('utf-16-le', 'ignore').encode())}"
                )
        if entity.get("type") == "text_mention" and not (entity.get("user") or {}).get("id"):
            raise bad_request("can't parse entities: text_mention without a user")
        kept.append({**entity, "offset": offset, "length": length})
    return kept


def text_content(ctx: Ctx, name: str = "text") -> JsonDict:
    """``text`` (+ ``entities``) of sendMessage/editMessageText, with length checks."""
    text = ctx.params.opt_str(name)
    if text is None or not text.strip():
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    content: JsonDict = {"text": text}
    entities = checked_entities(text, ctx.params.opt_json("entities"))
    if entities:
        content["entities"] = entities
    return content


def caption_content(ctx: Ctx) -> JsonDict:
    """``caption`` (+ ``caption_entities``) of media messages, if any."""
    caption = ctx.params.opt_str("caption")
    if not caption:
        return {}
    if len(caption) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    content: JsonDict = {"caption": caption}
    entities = checked_entities(caption, ctx.params.opt_json("caption_entities"))
    if entities:
        content["caption_entities"] = entities
    if ctx.params.opt_bool("show_caption_above_media"):
        content["show_caption_above_media"] = True
    return content


def deliver_sent(ctx: Ctx, target: Target, content: JsonDict) -> JsonDict:
    """Flood-check, store a bot-sent message and return it as the bot sees it."""
    return ctx.world.render(store_sent(ctx, target, content).data, ctx.bot.id)


def store_sent(ctx: Ctx, target: Target, content: JsonDict, *, flood: bool = True) -> StoredMessage:
    """Store a bot-sent message (after validation and the flood check), unrendered."""
    markup = reply_markup(ctx)
    if ctx.params.opt_bool("protect_content"):
        content = {**content, "has_protected_content": True}
    if flood:
        ctx.flood.check(ctx.bot.id, target.chat.key, target.chat.is_group)
    return ctx.world.add_message(
        target.chat,
        sender=ctx.bot.user_dict(),
        sender_bot_id=ctx.bot.id,
        content=content,
        thread_id=target.thread_id,
        reply_to=target.reply_to,
        reply_markup=markup,
        parse_mode=ctx.params.opt_str("parse_mode"),
    )
