"""Bot API methods that create messages: ``send*``, ``sendMediaGroup``, copy and forward."""

from __future__ import annotations

from typing import Any

from .ctx import (
    MAX_CAPTION,
    Ctx,
    Handler,
    Target,
    caption_content,
    chat_param,
    deliver_sent,
    send_target,
    store_sent,
    text_content,
)
from .files import StoredFile
from .models import WRONG_FILE_ID, JsonDict, StoredMessage, bad_request
from .wire import Upload

CONTENT_KEYS = (
    "text",
    "entities",
    "photo",
    "document",
    "audio",
    "voice",
    "video",
    "video_note",
    "animation",
    "sticker",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
)
_CAPTIONLESS = ("sticker", "video_note")
_COMPATIBLE = {("document", "animation"), ("animation", "document")}
_DICE = {"🎲": 6, "🎯": 6, "🎳": 6, "🏀": 5, "⚽": 5, "🎰": 64}


def resolve_input(ctx: Ctx, kind: str, value: str | None, upload: Upload | None) -> StoredFile:
    """The file a ``photo``/``document``/... parameter designates.

    An upload (direct part or ``attach://name``) creates a new file; any other string is a
    file_id that must belong to the calling bot. HTTP URLs cannot be fetched offline.
    """
    params = ctx.params
    if upload is None and value and value.startswith("attach://"):
        upload = params.uploads.get(value.removeprefix("attach://"))
        if upload is None:
            raise bad_request(WRONG_FILE_ID)
    if upload is not None:
        if not upload.data:
            raise bad_request("file must be non-empty")
        mime = upload.content_type
        return ctx.world.files.add(
            kind,
            upload.data,
            mime_type=None if mime == "application/octet-stream" else mime,
            file_name=upload.filename,
            width=params.opt_int("width") or params.opt_int("length"),
            height=params.opt_int("height") or params.opt_int("length"),
            duration=params.opt_int("duration"),
        )
    if not value:
        raise bad_request(f"there is no {kind.replace('_', ' ')} in the request")
    if value.startswith(("http://", "https://")):
        raise bad_request("failed to get HTTP URL content")
    stored = ctx.world.files.resolve(value, ctx.bot.id)
    if stored.kind != kind and (stored.kind, kind) not in _COMPATIBLE:
        raise bad_request(f"can't use file of type {_title(stored.kind)} as {_title(kind)}")
    return stored


def _title(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


async def send_message(ctx: Ctx) -> JsonDict:
    """sendMessage."""
    target = send_target(ctx)
    content = text_content(ctx)
    preview = ctx.params.opt_object("link_preview_options")
    if preview:
        content["link_preview_options"] = preview
    return deliver_sent(ctx, target, content)


def media_sender(kind: str) -> Handler:
    """The handler of ``send<Kind>`` for one media kind."""

    async def send_media(ctx: Ctx) -> JsonDict:
        target = send_target(ctx)
        params = ctx.params
        stored = resolve_input(ctx, kind, params.opt_str(kind), params.uploads.get(kind))
        extra: JsonDict = {}
        if kind == "sticker":
            extra["emoji"] = params.opt_str("emoji") or "🙂"
        if kind == "audio":
            extra.update(
                {k: v for k in ("performer", "title") if (v := params.opt_str(k)) is not None}
            )
        content = ctx.world.files.content(stored, extra)
        if kind not in _CAPTIONLESS:
            content.update(caption_content(ctx))
        if params.opt_bool("has_spoiler"):
            content["has_media_spoiler"] = True
        return deliver_sent(ctx, target, content)

    send_media.__name__ = f"send_{kind}"
    return send_media


def _location(ctx: Ctx) -> JsonDict:
    params = ctx.params
    latitude, longitude = params.req_float("latitude"), params.req_float("longitude")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise bad_request("wrong latitude or longitude specified")
    location: JsonDict = {"latitude": latitude, "longitude": longitude}
    for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
        value = params.opt_float(key)
        if value is not None:
            location[key] = value if key == "horizontal_accuracy" else int(value)
    return location


async def send_location(ctx: Ctx) -> JsonDict:
    """sendLocation."""
    target = send_target(ctx)
    return deliver_sent(ctx, target, {"location": _location(ctx)})


async def send_venue(ctx: Ctx) -> JsonDict:
    """sendVenue: the message carries both ``venue`` and ``location``."""
    target = send_target(ctx)
    location = _location(ctx)
    venue: JsonDict = {
        "location": location,
        "title": ctx.params.req_str("title"),
        "address": ctx.params.req_str("address"),
    }
    for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
        if (value := ctx.params.opt_str(key)) is not None:
            venue[key] = value
    return deliver_sent(ctx, target, {"venue": venue, "location": location})


async def send_contact(ctx: Ctx) -> JsonDict:
    """sendContact."""
    target = send_target(ctx)
    contact: JsonDict = {
        "phone_number": ctx.params.req_str("phone_number"),
        "first_name": ctx.params.req_str("first_name"),
    }
    for key in ("last_name", "vcard"):
        if (value := ctx.params.opt_str(key)) is not None:
            contact[key] = value
    return deliver_sent(ctx, target, {"contact": contact})


def build_poll(poll_id: str, question: str, options: list[Any], **flags: Any) -> JsonDict:
    """A Bot API Poll from a question and option texts (or InputPollOption objects)."""
    texts = [str(o.get("text", "")) if isinstance(o, dict) else str(o) for o in options]
    if not question.strip():
        raise bad_request("poll question must be non-empty")
    if not 2 <= len(texts) <= 12 or not all(text.strip() for text in texts):
        raise bad_request("poll must have 2-12 non-empty options")
    poll: JsonDict = {
        "id": poll_id,
        "question": question,
        "options": [
            {"persistent_id": str(i), "text": text, "voter_count": 0}
            for i, text in enumerate(texts)
        ],
        "total_voter_count": 0,
        "is_closed": bool(flags.get("is_closed", False)),
        "is_anonymous": bool(flags.get("is_anonymous", True)),
        "type": str(flags.get("type") or "regular"),
        "allows_multiple_answers": bool(flags.get("allows_multiple_answers", False)),
        "allows_revoting": bool(flags.get("allows_revoting", True)),
        "members_only": bool(flags.get("members_only", False)),
    }
    if flags.get("correct_option_id") is not None:
        poll["correct_option_id"] = int(flags["correct_option_id"])
    return poll


async def send_poll(ctx: Ctx) -> JsonDict:
    """sendPoll."""
    target = send_target(ctx)
    params = ctx.params
    options = params.opt_json("options")
    if not isinstance(options, list):
        raise bad_request("poll must have 2-12 non-empty options")
    poll = build_poll(
        str(5_000_000_000_000_000_000 + ctx.world.serial()),
        params.req_str("question", "poll question must be non-empty"),
        options,
        is_anonymous=params.opt_bool("is_anonymous", True),
        type=params.opt_str("type"),
        allows_multiple_answers=params.opt_bool("allows_multiple_answers"),
        is_closed=params.opt_bool("is_closed"),
        correct_option_id=params.opt_int("correct_option_id"),
    )
    return deliver_sent(ctx, target, {"poll": poll})


async def send_dice(ctx: Ctx) -> JsonDict:
    """sendDice (deterministic value: the emulator has no randomness to hide)."""
    target = send_target(ctx)
    emoji = ctx.params.opt_str("emoji") or "🎲"
    if emoji not in _DICE:
        raise bad_request("wrong dice emoji specified")
    value = len(target.chat.messages) % _DICE[emoji] + 1
    return deliver_sent(ctx, target, {"dice": {"emoji": emoji, "value": value}})


async def send_media_group(ctx: Ctx) -> list[JsonDict]:
    """sendMediaGroup: 2-10 items stored as separate messages sharing ``media_group_id``."""
    target = send_target(ctx)
    items = ctx.params.opt_json("media")
    if not isinstance(items, list) or not 2 <= len(items) <= 10:
        raise bad_request("wrong number of media items specified: expected 2-10")
    contents: list[JsonDict] = []
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in ("photo", "video", "document", "audio"):
            raise bad_request("can't parse InputMedia: media type is invalid")
        stored = resolve_input(ctx, kind, str(item.get("media") or ""), None)
        content = ctx.world.files.content(stored)
        caption = item.get("caption")
        if caption:
            if len(str(caption)) > MAX_CAPTION:
                raise bad_request("message caption is too long")
            content["caption"] = str(caption)
        contents.append(content)
    ctx.flood.check(ctx.bot.id, target.chat.key, target.chat.is_group)
    group_id = str(13_000_000_000_000_000 + ctx.world.serial())
    stored_messages = [
        store_sent(ctx, target, {**content, "media_group_id": group_id}, flood=False)
        for content in contents
    ]
    return [ctx.world.render(message.data, ctx.bot.id) for message in stored_messages]


def _source(ctx: Ctx, verb: str, participle: str) -> StoredMessage:
    chat = chat_param(ctx, "from_chat_id")
    message = ctx.world.get_message(chat, ctx.params.req_int("message_id"))
    if message is None:
        raise bad_request(f"message to {verb} not found")
    if not any(key in message.data for key in CONTENT_KEYS):
        raise bad_request(f"message can't be {participle}")
    return message


def _copied_content(source: StoredMessage) -> JsonDict:
    return {key: source.data[key] for key in CONTENT_KEYS if key in source.data}


async def copy_message(ctx: Ctx) -> JsonDict:
    """copyMessage: same content without a link to the original; answers ``{message_id}``."""
    source = _source(ctx, "copy", "copied")
    target: Target = send_target(ctx)
    content = _copied_content(source)
    if ctx.params.has("caption") and "text" not in content:
        content.pop("caption_entities", None)
        content.pop("caption", None)
        content.update(caption_content(ctx))
    message = store_sent(ctx, target, content)
    return {"message_id": message.message_id}


async def forward_message(ctx: Ctx) -> JsonDict:
    """forwardMessage: same content plus ``forward_origin`` naming the original sender."""
    source = _source(ctx, "forward", "forwarded")
    target = send_target(ctx)
    content = _copied_content(source)
    content["forward_origin"] = {
        "type": "user",
        "sender_user": source.data["from"],
        "date": source.data["date"],
    }
    return deliver_sent(ctx, target, content)


HANDLERS: dict[str, Handler] = {
    "sendMessage": send_message,
    "sendPhoto": media_sender("photo"),
    "sendDocument": media_sender("document"),
    "sendAudio": media_sender("audio"),
    "sendVoice": media_sender("voice"),
    "sendVideo": media_sender("video"),
    "sendVideoNote": media_sender("video_note"),
    "sendAnimation": media_sender("animation"),
    "sendSticker": media_sender("sticker"),
    "sendLocation": send_location,
    "sendVenue": send_venue,
    "sendContact": send_contact,
    "sendPoll": send_poll,
    "sendDice": send_dice,
    "sendMediaGroup": send_media_group,
    "copyMessage": copy_message,
    "forwardMessage": forward_message,
}
"""Sending methods by their canonical Bot API name."""
