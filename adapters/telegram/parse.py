"""Telegram ``Update`` → :class:`gateway.model.InboundMessage`.

Parsing goes through aiogram's own types (``Update.model_validate``), so whatever the
Bot API sends is read exactly as aiogram reads it (https://core.telegram.org/bots/api#update).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiogram.enums import ContentType
from aiogram.types import (
    CallbackQuery,
    Message,
    MessageReactionUpdated,
    ReactionTypeEmoji,
    Update,
    User,
)
from pydantic import ValidationError

from adapters.telegram.fastpath import parse_private_text
from adapters.telegram.styles import from_entities
from gateway.errors import BadPayload
from gateway.model import (
    AccountId,
    Attachment,
    Channel,
    ChatId,
    Content,
    InboundCallback,
    InboundMessage,
    InboundReaction,
    Kind,
    Location,
    MessageId,
    PlatformUserId,
    Sender,
    SharedContact,
    Venue,
)

# Service messages (members joined, topic created, pinned, …) are not conversation:
# they are dropped here on purpose, not lost.
_SERVICE = frozenset(
    {
        ContentType.NEW_CHAT_MEMBERS,
        ContentType.LEFT_CHAT_MEMBER,
        ContentType.NEW_CHAT_TITLE,
        ContentType.NEW_CHAT_PHOTO,
        ContentType.DELETE_CHAT_PHOTO,
        ContentType.GROUP_CHAT_CREATED,
        ContentType.SUPERGROUP_CHAT_CREATED,
        ContentType.CHANNEL_CHAT_CREATED,
        ContentType.MESSAGE_AUTO_DELETE_TIMER_CHANGED,
        ContentType.MIGRATE_TO_CHAT_ID,
        ContentType.MIGRATE_FROM_CHAT_ID,
        ContentType.PINNED_MESSAGE,
        ContentType.FORUM_TOPIC_CREATED,
        ContentType.FORUM_TOPIC_EDITED,
        ContentType.FORUM_TOPIC_CLOSED,
        ContentType.FORUM_TOPIC_REOPENED,
        ContentType.GENERAL_FORUM_TOPIC_HIDDEN,
        ContentType.GENERAL_FORUM_TOPIC_UNHIDDEN,
        ContentType.VIDEO_CHAT_SCHEDULED,
        ContentType.VIDEO_CHAT_STARTED,
        ContentType.VIDEO_CHAT_ENDED,
        ContentType.VIDEO_CHAT_PARTICIPANTS_INVITED,
        ContentType.WRITE_ACCESS_ALLOWED,
        ContentType.CHAT_BACKGROUND_SET,
        ContentType.BOOST_ADDED,
    }
)

# Readable placeholders for kinds the gateway does not carry, so that staff see that
# something arrived instead of nothing.
_PLACEHOLDERS: dict[str, str] = {
    ContentType.DICE: "🎲 dice",
    ContentType.GAME: "🎮 game",
    ContentType.STORY: "📖 story",
    ContentType.INVOICE: "🧾 invoice",
    ContentType.SUCCESSFUL_PAYMENT: "💳 payment",
    ContentType.PAID_MEDIA: "⭐ paid media",
    ContentType.GIVEAWAY: "🎁 giveaway",
    ContentType.CHECKLIST: "☑️ checklist",
    ContentType.WEB_APP_DATA: "🧩 web app data",
    ContentType.USERS_SHARED: "👥 shared users",
    ContentType.CHAT_SHARED: "💬 shared chat",
    ContentType.PASSPORT_DATA: "🛂 Telegram Passport data",
}


def event_key(bot_id: int, message: Message) -> str:
    """The idempotency key: ``(bot, chat, message_id)`` plus ``edit_date`` for edits.

    Not ``update_id`` alone: after a week without updates Telegram picks the next one
    at random (https://core.telegram.org/bots/api#getting-updates).
    """
    key = f"tg:{bot_id}:{message.chat.id}:{message.message_id}"
    if message.edit_date is not None:
        key += f":e{_timestamp(message.edit_date)}"
    return key


def _sender(user: User, chat_id: int, account: AccountId) -> Sender:
    name = " ".join(filter(None, (user.first_name, user.last_name))) or str(user.id)
    return Sender(
        account=account,
        channel=Channel.TELEGRAM,
        user_id=PlatformUserId(str(user.id)),
        chat_id=ChatId(str(chat_id)),
        display_name=name,
        username=user.username,
        language=user.language_code,
        is_bot=user.is_bot,
    )


def _reaction(
    reacted: MessageReactionUpdated, account: AccountId, bot_id: int, received_at: datetime
) -> list[InboundMessage | InboundCallback | InboundReaction]:
    """A user's reaction changed (https://core.telegram.org/bots/api#messagereactionupdated):
    the emoji they react with now ("" if none; a custom emoji shows as ⭐). A customer's
    in their chat with the bot, or an operator's in the staff group (where the bot is an
    administrator, as Telegram requires for these updates)."""
    user = reacted.user
    if user is None:
        return []  # anonymous: a group's own reaction, nobody's in particular
    new = reacted.new_reaction
    emoji = next((r.emoji for r in new if isinstance(r, ReactionTypeEmoji)), "⭐" if new else "")
    return [
        InboundReaction(
            key=f"tg:{bot_id}:{reacted.chat.id}:{reacted.message_id}:r"
            f":{int(reacted.date.timestamp())}:{emoji or '-'}",
            sender=_sender(user, reacted.chat.id, account),
            message_id=MessageId(str(reacted.message_id)),
            emoji=emoji,
            received_at=received_at,
        )
    ]


def parse_update(
    payload: Mapping[str, Any], *, account: AccountId, bot_id: int, received_at: datetime
) -> Sequence[InboundMessage | InboundCallback | InboundReaction]:
    """Normalise one update; ``[]`` for updates the gateway does not act on."""
    fast = parse_private_text(payload, account=account, bot_id=bot_id, received_at=received_at)
    if fast is not None:
        return fast
    if not isinstance(payload, Mapping) or type(payload.get("update_id")) is not int:
        raise BadPayload(Channel.TELEGRAM, "an update is a JSON object with an integer update_id")
    try:
        update = Update.model_validate(payload)
    except ValidationError as exc:
        raise BadPayload(Channel.TELEGRAM, f"not a Telegram update: {_first_error(exc)}") from exc
    if update.callback_query is not None:
        return _callback(update.callback_query, account, bot_id, received_at)
    if update.message_reaction is not None:
        return _reaction(update.message_reaction, account, bot_id, received_at)
    message = update.message or update.edited_message
    if message is None or message.content_type in _SERVICE:
        return []
    user = message.from_user
    if user is None:
        return []  # channel posts and anonymous admins: nobody to answer
    sender = _sender(user, message.chat.id, account)
    reply = message.reply_to_message
    # A message in a forum topic "replies" to the topic's creation message even when the
    # user quoted nothing; that is not a reply. Outside topics message_thread_id names the
    # replied-to thread, so the check applies to topic messages only (Bot API:
    # Message.is_topic_message).
    quoted = reply is not None and not (
        message.is_topic_message and reply.message_id == message.message_thread_id
    )
    return [
        InboundMessage(
            key=event_key(bot_id, message),
            sender=sender,
            message_id=MessageId(str(message.message_id)),
            sent_at=_aware(message.date),
            received_at=received_at,
            content=content_of(message, account),
            reply_to=MessageId(str(reply.message_id)) if reply is not None and quoted else None,
            quoted=(reply.text or reply.caption) if reply is not None and quoted else None,
            edited=update.edited_message is not None,
            thread_id=message.message_thread_id if message.is_topic_message else None,
            is_topic_message=bool(message.is_topic_message),
            group_chat=message.chat.type != "private",
        )
    ]


def _callback(
    query: CallbackQuery, account: AccountId, bot_id: int, received_at: datetime
) -> list[InboundMessage | InboundCallback]:
    message = query.message
    if not isinstance(message, Message) or query.data is None:
        return []  # a button on an inaccessible (too old) message, or a game button
    user = query.from_user
    sender = _sender(user, message.chat.id, account)
    return [
        InboundCallback(
            key=f"tgcb:{bot_id}:{query.id}",
            sender=sender,
            callback_id=query.id,
            data=query.data,
            message_id=MessageId(str(message.message_id)),
            thread_id=message.message_thread_id if message.is_topic_message else None,
            received_at=received_at,
        )
    ]


def content_of(message: Message, account: AccountId) -> Content:
    """Map one Telegram message to :class:`Content` (every kind, or a placeholder)."""
    text = message.text if message.text is not None else message.caption
    group = message.media_group_id
    styles = from_entities(
        text, message.entities if message.text is not None else message.caption_entities
    )

    def media(kind: Kind, file: Any, **extra: Any) -> Content:
        attachment = Attachment(
            account=account,
            file_id=file.file_id,
            file_unique_id=file.file_unique_id,
            size=getattr(file, "file_size", None),
            file_name=getattr(file, "file_name", None),
            mime_type=getattr(file, "mime_type", None),
            width=getattr(file, "width", None),
            height=getattr(file, "height", None),
            duration=getattr(file, "duration", None),
            **extra,
        )
        return Content(
            kind=kind, text=text, attachment=attachment, media_group_id=group, styles=styles
        )

    if message.photo:
        return media(Kind.PHOTO, max(message.photo, key=lambda p: p.width * p.height))
    if message.animation is not None:  # an animation also carries `document`: check first
        return media(Kind.ANIMATION, message.animation)
    for kind, file in (
        (Kind.DOCUMENT, message.document),
        (Kind.AUDIO, message.audio),
        (Kind.VOICE, message.voice),
        (Kind.VIDEO, message.video),
        (Kind.VIDEO_NOTE, message.video_note),
    ):
        if file is not None:
            return media(kind, file)
    if message.sticker is not None:
        return media(Kind.STICKER, message.sticker, emoji=message.sticker.emoji)
    if message.venue is not None:  # a venue also carries `location`: check first
        v = message.venue
        where = _point(v.location.latitude, v.location.longitude)
        venue = Venue(location=where, title=v.title, address=v.address)
        return Content(kind=Kind.VENUE, venue=venue, text=f"📍 {v.title}, {v.address}")
    if message.location is not None:
        loc = _point(message.location.latitude, message.location.longitude)
        return Content(kind=Kind.LOCATION, location=loc)
    if message.contact is not None:
        c = message.contact
        shared = SharedContact(
            phone=c.phone_number,
            first_name=c.first_name,
            last_name=c.last_name,
            user_id=str(c.user_id) if c.user_id else None,
        )
        return Content(kind=Kind.CONTACT, contact=shared)
    if message.poll is not None:
        options = "\n".join(f"• {o.text}" for o in message.poll.options)
        return Content(kind=Kind.POLL, text=f"📊 {message.poll.question}\n{options}")
    if message.text is not None:
        return Content(kind=Kind.TEXT, text=message.text, styles=styles)
    label = _PLACEHOLDERS.get(message.content_type, str(message.content_type).replace("_", " "))
    return Content(kind=Kind.UNSUPPORTED, text=f"[{label} — not supported by the gateway]")


def _point(latitude: float, longitude: float) -> Location:
    """A location, refused when a coordinate is not a finite number (pydantic reads
    "nan" and "inf" as floats; stored, they would come back as null)."""
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise BadPayload(Channel.TELEGRAM, "a location's coordinates are not finite numbers")
    return Location(latitude=latitude, longitude=longitude)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _timestamp(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(_aware(value).timestamp())


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"
