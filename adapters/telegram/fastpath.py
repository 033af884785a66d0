"""A fast path for the most common update: a plain text message in a private chat.

aiogram's ``Update.model_validate`` builds and post-initialises a whole tree of
models; on the webhook it was over a third of the CPU per request (bench/ingest.py,
cProfile). Most customer traffic is text typed into a private chat, so this module
reads exactly that shape from the raw dict with strict type checks, and returns
``None`` for anything else — any other kind, any unknown field, any type surprise —
so that aiogram parses it as before. It never raises and never guesses: when in
doubt it declines. ``tests/adapters/test_telegram_fastpath.py`` proves that whatever
it accepts yields exactly what the aiogram path yields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from adapters.telegram.styles import from_entities
from gateway.model import (
    AccountId,
    Channel,
    ChatId,
    Content,
    InboundCallback,
    InboundMessage,
    Kind,
    MessageId,
    PlatformUserId,
    Sender,
)

_UPDATE_KEYS = frozenset({"update_id", "message", "edited_message"})
_MESSAGE_KEYS = frozenset(
    {"message_id", "from", "chat", "date", "text", "entities", "edit_date", "link_preview_options"}
)
_CHAT_KEYS = frozenset({"id", "type", "first_name", "last_name", "username"})
_USER_KEYS = frozenset(
    {
        "id",
        "is_bot",
        "first_name",
        "last_name",
        "username",
        "language_code",
        "is_premium",
        "added_to_attachment_menu",
    }
)
_ENTITY_KEYS = frozenset({"type", "offset", "length", "url", "language", "custom_emoji_id"})
_MAX_DATE = 2**40  # far beyond any real timestamp; larger values go to aiogram to judge


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass: a bool id is not an id


def _optional_str(data: Mapping[str, Any], key: str) -> bool:
    return key not in data or type(data[key]) is str


def _user_ok(user: Any) -> bool:
    return (
        type(user) is dict
        and user.keys() <= _USER_KEYS
        and _is_int(user.get("id"))
        and type(user.get("is_bot")) is bool
        and type(user.get("first_name")) is str
        and all(_optional_str(user, k) for k in ("last_name", "username", "language_code"))
        and all(
            type(user.get(k, False)) is bool for k in ("is_premium", "added_to_attachment_menu")
        )
    )


def _entities_ok(entities: Any) -> bool:
    return type(entities) is list and all(
        type(e) is dict
        and e.keys() <= _ENTITY_KEYS
        and type(e.get("type")) is str
        and _is_int(e.get("offset"))
        and _is_int(e.get("length"))
        and all(_optional_str(e, k) for k in ("url", "language", "custom_emoji_id"))
        for e in entities
    )


def parse_private_text(
    payload: Mapping[str, Any], *, account: AccountId, bot_id: int, received_at: datetime
) -> list[InboundMessage | InboundCallback] | None:
    """The normalised message, or ``None`` when the update is not the simple case."""
    if type(payload) is not dict or not payload.keys() <= _UPDATE_KEYS:
        return None
    edited = "edited_message" in payload
    message = payload.get("edited_message" if edited else "message")
    if (
        not _is_int(payload.get("update_id"))
        or ("message" in payload) == edited  # exactly one of the two
        or type(message) is not dict
        or not message.keys() <= _MESSAGE_KEYS
        or not _is_int(message.get("message_id"))
        or not _is_int(message.get("date"))
        or not 0 <= message["date"] < _MAX_DATE
        or type(message.get("text")) is not str
        or "link_preview_options" in message  # a nested model: let aiogram check it
        or ("entities" in message and not _entities_ok(message["entities"]))
        or edited != ("edit_date" in message)
        or (
            edited and not (_is_int(message["edit_date"]) and 0 <= message["edit_date"] < _MAX_DATE)
        )
    ):
        return None
    chat: Any = message.get("chat")
    user: Any = message.get("from")
    if (
        type(chat) is not dict
        or not chat.keys() <= _CHAT_KEYS
        or chat.get("type") != "private"
        or not _is_int(chat.get("id"))
        or not all(_optional_str(chat, k) for k in ("first_name", "last_name", "username"))
        or not _user_ok(user)
    ):
        return None
    name = " ".join(filter(None, (user["first_name"], user.get("last_name")))) or str(user["id"])
    key = f"tg:{bot_id}:{chat['id']}:{message['message_id']}"
    if edited:
        key += f":e{message['edit_date']}"
    sender = Sender(
        account=account,
        channel=Channel.TELEGRAM,
        user_id=PlatformUserId(str(user["id"])),
        chat_id=ChatId(str(chat["id"])),
        display_name=name,
        username=user.get("username"),
        language=user.get("language_code"),
        is_bot=user["is_bot"],
    )
    return [
        InboundMessage(
            key=key,
            sender=sender,
            message_id=MessageId(str(message["message_id"])),
            sent_at=datetime.fromtimestamp(message["date"], UTC),
            received_at=received_at,
            content=Content(
                kind=Kind.TEXT,
                text=message["text"],
                styles=from_entities(message["text"], message.get("entities")),
            ),
            edited=edited,
        )
    ]
