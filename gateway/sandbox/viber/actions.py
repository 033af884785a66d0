"""What people do in the emulated Viber, and what Viber does with a bot's messages.

People open the chat with a bot (``conversation_started``; the bot may answer with one
welcome message in its HTTP answer), subscribe, unsubscribe, write, and see the bot's
messages (``seen``). A person who writes becomes subscribed without a ``subscribed``
callback, as in Viber. A bot's message is delivered at once, except a picture, video or
file: Viber first downloads its ``media`` URL, and reports ``failed`` with ``desc`` when
that download fails.

These functions run on the emulator's event loop; callbacks go out as its tasks. While a
bot has no webhook, people can still act (real Viber would not even show the chat), but
their callbacks go nowhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from yarl import URL

from ..common import is_loopback
from ..common.images import solid_png
from .callbacks import FetchError
from .files import image_name
from .models import CHAT_HOSTNAME, MEDIA_TYPES, Bot, JsonDict, StoredMessage, ViberError
from .state import ViberWorld
from .validate import Checked, check_message

RICH_MEDIA: JsonDict = {
    "Type": "rich_media",
    "ButtonsGroupColumns": 6,
    "ButtonsGroupRows": 2,
    "BgColor": "#FFFFFF",
    "Buttons": [
        {"ActionBody": "https://example.com/catalog", "ActionType": "open-url", "Text": "Catalog"}
    ],
}
"""What a customer's ``rich_media`` message carries (a forwarded card)."""


def _chat(world: ViberWorld, token: str, user_id: str) -> Bot:
    bot = world.bot(token)
    world.user(user_id)
    return bot


# --- people ---------------------------------------------------------------------------------


def open_chat(world: ViberWorld, token: str, user_id: str, context: str = "") -> JsonDict:
    """The person opens the chat (``conversation_started``); returns the callback."""
    bot = _chat(world, token, user_id)
    user = world.user(user_id)
    bot.opened.add(user_id)
    subscribed = bool(bot.subscribed.get(user_id))
    fields: JsonDict = {"type": "open"}
    if context:
        fields["context"] = context
    payload = world.envelope(
        "conversation_started",
        **fields,
        user=user.profile(bot.webhook),
        api_version=user.api_version,
        subscribed=subscribed,
    )
    world.feed.emit("conversation_started", bot.id, user_id, context=context, subscribed=subscribed)
    world.callbacks.send(bot, payload, lambda answer: _welcome(world, bot, user_id, answer))
    return payload


def _welcome(world: ViberWorld, bot: Bot, user_id: str, answer: str) -> None:
    """Viber sends what the bot answered to ``conversation_started``, if it is a message."""
    try:
        body = json.loads(answer)
    except ValueError:
        return  # not JSON: no welcome message
    if not isinstance(body, dict) or not body:
        return
    try:
        checked = check_message(body)
    except ViberError as error:
        entry = {"event": "welcome", "bot_id": bot.id, "user_id": user_id, "ok": False}
        world.callbacks.log.append({**entry, "error": error.details, "payload": body})
        return
    message = _outgoing(world, bot, user_id, checked, welcome=True)
    world.add_message(bot, message)
    after_send(world, bot, message)


def subscribe(world: ViberWorld, token: str, user_id: str) -> JsonDict:
    """The person subscribes to the bot (``subscribed``); returns the callback."""
    bot = _chat(world, token, user_id)
    if bot.subscribed.get(user_id):
        raise ValueError("already subscribed")
    user = world.user(user_id)
    bot.subscribed[user_id] = True
    payload = world.envelope(
        "subscribed", user=user.profile(bot.webhook), api_version=user.api_version
    )
    world.feed.emit("subscribed", bot.id, user_id)
    world.callbacks.send(bot, payload)
    return payload


def unsubscribe(world: ViberWorld, token: str, user_id: str) -> JsonDict:
    """The person unsubscribes (``unsubscribed``): the bot's sends then fail with 6."""
    bot = world.bot(token)
    world.user(user_id)
    if not bot.subscribed.get(user_id):
        raise ValueError("not subscribed")
    bot.subscribed[user_id] = False
    payload = world.envelope("unsubscribed", user_id=user_id)
    world.feed.emit("unsubscribed", bot.id, user_id)
    world.callbacks.send(bot, payload)
    return payload


def user_content(
    world: ViberWorld, text: str, given: Mapping[str, Any]
) -> tuple[str, JsonDict, bytes | None]:
    """``(type, message fields, media bytes)`` of what a person sends: ``text`` and at most
    one of ``given`` (the keyword arguments of ``ViberEmulator.user_send``: ``picture``,
    ``video``, ``file``, ``sticker_id``, ``contact``, ``location``, ``url``,
    ``rich_media``; ``None``/``False`` = not sent). Media are stored and referred to by the
    emulator's absolute URLs."""
    kinds = [name for name, value in given.items() if value is not None and value is not False]
    if len(kinds) > 1:
        raise ValueError(f"one kind of message at a time, got {kinds}")
    kind = {"sticker_id": "sticker"}.get(kinds[0], kinds[0]) if kinds else "text"
    if kind not in ("text", "picture", "video") and text:
        raise ValueError(f"a {kind} message has no text")
    if kind == "text" and not text:
        raise ValueError("nothing to send")
    picture, video, file = given.get("picture"), given.get("video"), given.get("file")
    sticker_id, contact, location = (given.get(k) for k in ("sticker_id", "contact", "location"))
    url, rich_media = given.get("url"), given.get("rich_media")
    content: JsonDict = {"text": text} if text else {}
    data: bytes | None = None
    if picture is not None:
        data = picture
        stored = world.files.add(picture, image_name(picture, "photo"))
        content.update(media=stored.url, thumbnail=stored.url, file_name=stored.name)
        content["size"] = len(picture)
    elif video is not None:
        data = video
        stored = world.files.add(video, "video.mp4")
        thumbnail = world.files.add(solid_png(320, 180, (40, 40, 40)), "thumbnail.png")
        content.update(media=stored.url, thumbnail=thumbnail.url, size=len(video))
        content["duration"] = max(1, len(video) // 250_000)
    elif file is not None:
        name, data = file
        stored = world.files.add(data, name)
        content.update(media=stored.url, size=len(data), file_name=name)
    elif sticker_id is not None:
        if sticker_id not in world.stickers:
            png = solid_png(128, 128, (255, 196, (sticker_id * 37) % 256))
            world.stickers[sticker_id] = world.files.add(png, f"sticker_{sticker_id}.png").url
        content.update(sticker_id=sticker_id, media=world.stickers[sticker_id])
    elif contact is not None:
        content["contact"] = {"name": contact[0], "phone_number": contact[1]}
    elif location is not None:
        lat, lon = location
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError("location out of range")
        content["location"] = {"lat": lat, "lon": lon}
    elif url is not None:
        content["media"] = url
    elif rich_media:
        content.update(rich_media=RICH_MEDIA, alt_text="Catalog")
    return kind, content, data


def send(
    world: ViberWorld, token: str, user_id: str, kind: str, content: JsonDict, data: bytes | None
) -> StoredMessage:
    """The person sends a message (``message`` callback) and so becomes subscribed."""
    bot = _chat(world, token, user_id)
    user = world.user(user_id)
    message = StoredMessage(
        direction="in",
        message_token=world.tokens.new(),
        type=kind,
        user_id=user_id,
        content=content,
        sender={"id": user.id, "name": user.name},
        tracking_data=bot.tracking.get(user_id),
        media_bytes=data,
        local_url=content.get("media") if data is not None else None,
    )
    world.add_message(bot, message)
    bot.subscribed[user_id] = True
    body: JsonDict = {"type": kind, **content}
    if message.tracking_data is not None:
        body["tracking_data"] = message.tracking_data
    payload: JsonDict = {
        "event": "message",
        "timestamp": message.timestamp,
        "chat_hostname": CHAT_HOSTNAME,
        "message_token": message.message_token,
        "sender": user.profile(bot.webhook),
        "message": body,
        "silent": False,
    }
    world.callbacks.send(bot, payload)
    return message


def sees(world: ViberWorld, token: str, user_id: str, message_token: int) -> StoredMessage:
    """The person sees a message of the bot (``seen``; ``delivered`` first if due)."""
    bot = world.bot(token)
    message = world.message(bot, user_id, message_token)
    if message.direction != "out":
        raise ValueError("people see the bot's messages, not their own")
    if message.status == "failed":
        raise ValueError("a failed message cannot be seen")
    if message.status == "seen":
        return message
    if message.type in MEDIA_TYPES and message.media_bytes is None:
        raise ValueError("the message is not delivered yet: its media is still downloading")
    if message.status != "delivered":
        world.receipt(bot, message, "delivered")
    world.receipt(bot, message, "seen")
    return message


# --- the bot's messages ---------------------------------------------------------------------


def _outgoing(
    world: ViberWorld, bot: Bot, user_id: str, checked: Checked, *, welcome: bool = False
) -> StoredMessage:
    if checked.tracking_data is not None:
        bot.tracking[user_id] = checked.tracking_data
    return StoredMessage(
        direction="out",
        message_token=world.tokens.new(),
        type=checked.type,
        user_id=user_id,
        content=checked.content,
        sender=checked.sender,
        keyboard=checked.keyboard,
        tracking_data=checked.tracking_data,
        min_api_version=checked.min_api_version,
        status="sent",
        welcome=welcome,
    )


def accept(world: ViberWorld, bot: Bot, user_id: str, checked: Checked) -> StoredMessage:
    """Store a message ``send_message`` accepted and start delivering it."""
    message = world.add_message(bot, _outgoing(world, bot, user_id, checked))
    after_send(world, bot, message)
    return message


def after_send(world: ViberWorld, bot: Bot, message: StoredMessage) -> None:
    """Download the media (if any), then report the message delivered (if automatic)."""
    world.callbacks.spawn(_deliver(world, bot, message))


async def _deliver(world: ViberWorld, bot: Bot, message: StoredMessage) -> None:
    if message.type in MEDIA_TYPES:
        try:
            await _fetch(world, message)
        except FetchError as error:
            world.receipt(bot, message, "failed", str(error))
            return
        world.changed(bot, message)
    if world.auto_deliver and message.status == "sent":
        if world.receipt_delay > 0:
            await asyncio.sleep(world.receipt_delay)
        if message.status == "sent":
            world.receipt(bot, message, "delivered")


async def _fetch(world: ViberWorld, message: StoredMessage) -> None:
    url = str(message.content["media"])
    if not is_loopback(URL(url).host):
        raise FetchError(f"the emulator only downloads from this machine, not {url}")
    data, mime = await world.callbacks.fetch(url)
    name = str(message.content.get("file_name") or URL(url).name)
    if "." not in name:
        name = image_name(data) if message.type == "picture" else "video.mp4"
    stored = world.files.add(data, name, mime if mime != "application/octet-stream" else "")
    message.media_bytes, message.local_url = data, stored.url
