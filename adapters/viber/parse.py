"""Viber REST Bot API callbacks → model events
(https://developers.viber.com/docs/api/rest-bot-api/#callbacks).

Every callback is ``{"event", "timestamp" (ms), "message_token", …}``. The idempotency
key is the message token with the event name: ``delivered`` and ``seen`` of one message
share its token. Tokens exceed 2**53: they are kept as exact integers (JSON parsing in
Python never turns them into floats) and carried as strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.errors import BadPayload
from gateway.model import (
    AccountId,
    Attachment,
    Channel,
    ChatId,
    Content,
    InboundMessage,
    InboundReceipt,
    InboundStatus,
    Kind,
    Location,
    MessageId,
    PlatformUserId,
    Sender,
    SharedContact,
)

Event = InboundMessage | InboundStatus | InboundReceipt
RECEIPTS = {"delivered": "delivered", "seen": "seen", "failed": "failed"}
IGNORED = frozenset({"webhook", "conversation_started", "client_status", "action"})


def parse_callback(
    payload: Mapping[str, Any], *, account: AccountId, received_at: datetime
) -> Sequence[Event]:
    """Normalise one callback; ``[]`` for callbacks with nothing to store. Raises
    ``BadPayload`` for anything that is not a Viber callback as documented."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("event"), str):
        raise BadPayload(Channel.VIBER, "a callback is a JSON object with a string event")
    event = payload["event"]
    if event in IGNORED:
        return []
    try:
        token = _token(payload["message_token"])
        key = f"viber:{account}:{token}:{event}"
        match event:
            case "message":
                return [_message(payload, key, token, account, received_at)]
            case "subscribed":
                user = _user(payload["user"], account)
                return [InboundStatus(key=key, sender=user, allowed=True, received_at=received_at)]
            case "unsubscribed":
                user = _bare(payload["user_id"], account)
                return [InboundStatus(key=key, sender=user, allowed=False, received_at=received_at)]
            case "delivered" | "seen" | "failed":
                reason = payload.get("desc") if event == "failed" else None
                receipt = InboundReceipt(
                    key=key,
                    sender=_bare(payload["user_id"], account),
                    message_id=MessageId(token),
                    status=RECEIPTS[event],
                    reason=str(reason) if reason else None,
                    received_at=received_at,
                )
                return [receipt]
    except (AttributeError, LookupError, TypeError, ValueError, OverflowError) as exc:
        raise BadPayload(Channel.VIBER, f"malformed {event}: {exc!r}") from exc
    return []  # an event type added after this was written: nothing to do with it


def _token(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ValueError(f"not a message token: {value!r}")
    return str(value)


def _user(user: Any, account: AccountId) -> Sender:
    if not isinstance(user, Mapping):
        raise TypeError("user is not an object")
    uid = user["id"]
    if not isinstance(uid, str) or not uid:
        raise ValueError("a Viber user id is a non-empty string")
    return Sender(
        account=account,
        channel=Channel.VIBER,
        user_id=PlatformUserId(uid),
        chat_id=ChatId(uid),
        display_name=str(user.get("name") or "Viber user"),
        language=str(user["language"]) if user.get("language") else None,
    )


def _bare(user_id: Any, account: AccountId) -> Sender:
    return _user({"id": user_id}, account)


def _message(
    payload: Mapping[str, Any], key: str, token: str, account: AccountId, received_at: datetime
) -> InboundMessage:
    sender = _user(payload["sender"], account)
    message = payload["message"]
    if not isinstance(message, Mapping):
        raise TypeError("message is not an object")
    stamp = payload["timestamp"]
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise TypeError("timestamp is not an integer")
    return InboundMessage(
        key=key,
        sender=sender,
        message_id=MessageId(token),
        sent_at=datetime.fromtimestamp(stamp / 1000, UTC),
        received_at=received_at,
        content=_content(message, account, sender),
    )


def _content(message: Mapping[str, Any], account: AccountId, sender: Sender) -> Content:
    kind = message["type"]
    text = str(message.get("text") or "") or None

    def file(name: str | None = None) -> Attachment:
        size = message.get("size")
        return Attachment(
            account=account,
            file_id=str(message["media"]),
            file_name=str(message.get("file_name") or name or "") or None,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            duration=_seconds(message.get("duration")),
        )

    match kind:
        case "text":
            return Content(kind=Kind.TEXT, text=text or "")
        case "picture":
            return Content(kind=Kind.PHOTO, text=text, attachment=file())
        case "video":
            return Content(kind=Kind.VIDEO, text=text, attachment=file("video.mp4"))
        case "file":
            return Content(kind=Kind.DOCUMENT, attachment=file("file"))
        case "sticker":
            if message.get("media"):
                return Content(kind=Kind.STICKER, attachment=file("sticker.png"))
            return Content(kind=Kind.TEXT, text=f"[sticker {message.get('sticker_id', '')}]")
        case "contact":
            shared = message["contact"]
            # A contact a customer sends a bot comes from Viber's "share phone" button:
            # their own number, which feeds contact dedup.
            contact = SharedContact(
                phone=str(shared["phone_number"]),
                first_name=str(shared.get("name") or sender.display_name),
                user_id=sender.user_id,
            )
            return Content(kind=Kind.CONTACT, contact=contact)
        case "location":
            where = message["location"]
            point = Location(
                latitude=_coordinate(where["lat"]), longitude=_coordinate(where["lon"])
            )
            return Content(kind=Kind.LOCATION, location=point)
        case "url":
            return Content(kind=Kind.TEXT, text=str(message["media"]))
        case "rich_media":
            return Content(kind=Kind.TEXT, text=text or "[rich media message]")
    return Content(kind=Kind.UNSUPPORTED, text=f"[{kind}]")


def _seconds(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(value)  # "duration: video or audio duration in seconds"


def _coordinate(value: Any) -> float:
    """A latitude or longitude: a finite number ("nan", "inf" and "1e999" are not)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a coordinate: {value!r:.40}")
    return number
