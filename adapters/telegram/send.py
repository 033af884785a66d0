"""Sending :class:`gateway.model.Content` with the Bot API method that fits its kind."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
)

from adapters.telegram import lean
from adapters.telegram.styles import to_entities
from adapters.text import split_text
from gateway.model import Content, Destination, Kind

# Bot API limits (https://core.telegram.org/bots/api#sendmessage, #sendphoto):
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

File = str | BufferedInputFile
__all__ = ["TEXT_LIMIT", "keyboard", "send_album", "send_content", "split_text"]
ALBUM_KINDS: dict[
    Kind, type[InputMediaPhoto | InputMediaVideo | InputMediaDocument | InputMediaAudio]
] = {
    Kind.PHOTO: InputMediaPhoto,
    Kind.VIDEO: InputMediaVideo,
    Kind.DOCUMENT: InputMediaDocument,
    Kind.AUDIO: InputMediaAudio,
}
"""What an album can hold (https://core.telegram.org/bots/api#sendmediagroup): photos and
videos together, or documents only, or audio files only; 2-10 items."""


async def send_content(
    bot: Bot, destination: Destination, content: Content, file: File | None
) -> list[int]:
    """Send and return the ids of the messages created (one or more)."""
    chat = int(destination.chat_id)
    thread = destination.thread_id
    reply_to = int(destination.reply_to) if destination.reply_to else None
    reply = lean.reply_parameters(reply_to)
    text = content.text or ""
    # A caption longer than Telegram allows goes after the media as text.
    caption, tail = (text, "") if len(text) <= CAPTION_LIMIT else ("", text)
    common: dict[str, Any] = {
        "chat_id": chat,
        "message_thread_id": thread,
        "reply_parameters": reply,
    }
    markup = keyboard(content)
    sent: list[Message] = []
    kind = content.kind

    if file is not None and kind in _MEDIA_SENDERS:
        method, argument, takes_caption = _MEDIA_SENDERS[kind]
        kwargs = {argument: file, **common}
        if takes_caption:
            kwargs["caption"] = caption or None
            kwargs["caption_entities"] = to_entities(content) if caption else None
        elif caption:
            tail = caption
        sent.append(await getattr(bot, method)(**kwargs))
    elif kind is Kind.LOCATION and content.location is not None:
        loc = content.location
        sent.append(
            await bot.send_location(latitude=loc.latitude, longitude=loc.longitude, **common)
        )
    elif kind is Kind.VENUE and content.venue is not None:
        v = content.venue
        sent.append(
            await bot.send_venue(
                latitude=v.location.latitude,
                longitude=v.location.longitude,
                title=v.title,
                address=v.address,
                **common,
            )
        )
    elif kind is Kind.CONTACT and content.contact is not None:
        c = content.contact
        sent.append(
            await bot.send_contact(
                phone_number=c.phone,
                first_name=c.first_name,
                last_name=c.last_name,
                **common,
            )
        )
    else:
        tail = text or "…"
    chunks = split_text(tail) if tail else []
    # Styles and mentions are kept when the text goes out whole (most do).
    whole = len(chunks) == 1 and chunks[0] == text
    ids = [m.message_id for m in sent]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        ids.append(
            await lean.send_message(
                bot,
                lean.TextMessage(
                    chat,
                    chunk,
                    thread_id=thread,
                    reply_to=None if ids else reply_to,  # the first message only
                    entities=to_entities(content) if whole else None,
                    markup=markup if last else None,
                ),
            )
        )
    return ids


async def send_album(
    bot: Bot, destination: Destination, items: list[tuple[Content, File]]
) -> list[int]:
    """One sendMediaGroup; each item keeps its caption (cut to Telegram's limit)."""
    media = [
        ALBUM_KINDS[content.kind](media=file, caption=(content.text or "")[:CAPTION_LIMIT] or None)
        for content, file in items
    ]
    sent = await bot.send_media_group(
        chat_id=int(destination.chat_id),
        message_thread_id=destination.thread_id,
        media=media,  # type: ignore[arg-type]
    )
    return [m.message_id for m in sent]


def keyboard(content: Content) -> InlineKeyboardMarkup | None:
    if not content.buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b.text, callback_data=b.data, url=b.url) for b in row]
            for row in content.buttons
        ]
    )


# kind → (Bot method, file argument, accepts a caption)
_MEDIA_SENDERS: dict[Kind, tuple[str, str, bool]] = {
    Kind.PHOTO: ("send_photo", "photo", True),
    Kind.DOCUMENT: ("send_document", "document", True),
    Kind.AUDIO: ("send_audio", "audio", True),
    Kind.VOICE: ("send_voice", "voice", True),
    Kind.VIDEO: ("send_video", "video", True),
    Kind.VIDEO_NOTE: ("send_video_note", "video_note", False),
    Kind.ANIMATION: ("send_animation", "animation", True),
    Kind.STICKER: ("send_sticker", "sticker", False),
}
