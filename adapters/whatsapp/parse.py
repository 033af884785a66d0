"""WhatsApp Cloud API webhooks → model events
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples).

One POST may carry several entries, changes, messages and statuses. A message's key is
its ``wamid``; a status's is the ``wamid`` with the status (Meta retries failed
deliveries for days, so both are deduplicated). The sender's ``wa_id`` is their phone
number: it becomes ``Sender.phone`` and feeds contact deduplication. Media arrive as
ids, downloaded later through ``GET /{media-id}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.markup import from_whatsapp
from gateway.errors import BadPayload
from gateway.model import (
    AccountId,
    Attachment,
    Channel,
    ChatId,
    Content,
    InboundMessage,
    InboundReaction,
    InboundReceipt,
    Kind,
    Location,
    MessageId,
    PlatformUserId,
    Sender,
    SharedContact,
    Venue,
)

Event = InboundMessage | InboundReaction | InboundReceipt
STATUSES = {"delivered": "delivered", "read": "seen", "failed": "failed"}
"""``sent`` is left out: the operator's message in the topic already says that much."""
MEDIA = {
    "image": Kind.PHOTO,
    "document": Kind.DOCUMENT,
    "video": Kind.VIDEO,
    "sticker": Kind.STICKER,
}


def parse_webhook(
    payload: Mapping[str, Any], *, account: AccountId, phone_number_id: str, received_at: datetime
) -> Sequence[Event]:
    """Every message and status for ``phone_number_id`` in one webhook POST."""
    if not isinstance(payload, Mapping) or payload.get("object") != "whatsapp_business_account":
        raise BadPayload(Channel.WHATSAPP, "not a whatsapp_business_account webhook")
    try:
        return list(_events(payload, account, phone_number_id, received_at))
    except (AttributeError, LookupError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise BadPayload(Channel.WHATSAPP, f"malformed webhook: {exc!r}") from exc


def _events(
    payload: Mapping[str, Any], account: AccountId, number: str, received_at: datetime
) -> Iterator[Event]:
    for entry in _list(payload["entry"]):
        for change in _list(entry["changes"]):
            value = change["value"]
            if change.get("field") != "messages" or not isinstance(value, Mapping):
                continue
            if str(value["metadata"]["phone_number_id"]) != number:
                continue  # another number of the same app
            names = {
                str(c["wa_id"]): str((c.get("profile") or {}).get("name") or "")
                for c in _list(value.get("contacts") or [])
            }
            for message in _list(value.get("messages") or []):
                yield _message(message, names, account, received_at)
            for status in _list(value.get("statuses") or []):
                receipt = _status(status, account, received_at)
                if receipt is not None:
                    yield receipt


def _list(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise TypeError(f"expected a list of objects, got {type(value).__name__}")
    return value


def _sender(wa_id: Any, name: str, account: AccountId) -> Sender:
    if not isinstance(wa_id, str) or not wa_id.isdigit():
        raise ValueError(f"a wa_id is a phone number in digits, got {wa_id!r}")
    return Sender(
        account=account,
        channel=Channel.WHATSAPP,
        user_id=PlatformUserId(wa_id),
        chat_id=ChatId(wa_id),
        display_name=name or f"+{wa_id}",
        phone=f"+{wa_id}",
    )


def _stamp(value: Any) -> datetime:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise TypeError("timestamp is not a number")
    return datetime.fromtimestamp(int(value), UTC)


def _message(
    message: Mapping[str, Any], names: dict[str, str], account: AccountId, received_at: datetime
) -> InboundMessage | InboundReaction:
    wa_id, wamid = message["from"], message["id"]
    if not isinstance(wamid, str) or not wamid:
        raise ValueError("a message id is a non-empty string")
    if message["type"] == "reaction":
        # {"reaction": {"message_id": "wamid…", "emoji": "👍"}}; no emoji: taken back
        # (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples#reaction-messages).
        reaction = message["reaction"]
        return InboundReaction(
            key=f"wa:{account}:{wamid}",
            sender=_sender(wa_id, names.get(str(wa_id), ""), account),
            message_id=MessageId(str(reaction["message_id"])),
            emoji=str(reaction.get("emoji") or ""),
            received_at=received_at,
        )
    context = message.get("context")
    reply_to = context.get("id") if isinstance(context, Mapping) else None
    content = _content(message, account)
    return InboundMessage(
        key=f"wa:{account}:{wamid}",
        sender=_sender(wa_id, names.get(str(wa_id), ""), account),
        message_id=MessageId(wamid),
        sent_at=_stamp(message["timestamp"]),
        received_at=received_at,
        content=content,
        reply_to=MessageId(str(reply_to)) if reply_to else None,
    )


def _content(message: Mapping[str, Any], account: AccountId) -> Content:
    kind = message["type"]
    body: Any = message.get(kind)
    if kind == "text":
        text, styles = from_whatsapp(str(body["body"]))
        return Content(kind=Kind.TEXT, text=text, styles=styles)
    if kind in MEDIA or kind == "audio":
        file = Attachment(
            account=account,
            file_id=str(body["id"]),
            file_name=str(body["filename"]) if body.get("filename") else None,
            mime_type=str(body["mime_type"]) if body.get("mime_type") else None,
        )
        if kind == "audio":
            media_kind = Kind.VOICE if body.get("voice") else Kind.AUDIO
        else:
            media_kind = MEDIA[kind]
        caption, styles = from_whatsapp(str(body["caption"])) if body.get("caption") else (None, ())
        return Content(kind=media_kind, text=caption, attachment=file, styles=styles)
    if kind == "location":
        point = Location(
            latitude=_coordinate(body["latitude"]), longitude=_coordinate(body["longitude"])
        )
        if body.get("name") or body.get("address"):
            venue = Venue(
                location=point,
                title=str(body.get("name") or ""),
                address=str(body.get("address") or ""),
            )
            return Content(kind=Kind.VENUE, venue=venue)
        return Content(kind=Kind.LOCATION, location=point)
    if kind == "contacts":
        first = _list(body)[0]
        phones = _list(first.get("phones") or [])
        if not phones:
            return Content(kind=Kind.TEXT, text=f"👤 {first['name']['formatted_name']}")
        shared = SharedContact(
            phone=str(phones[0]["phone"]), first_name=str(first["name"]["formatted_name"])
        )
        return Content(kind=Kind.CONTACT, contact=shared)
    if kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply")
        said = str(reply["title"])
        if reply.get("description"):
            said += f" — {reply['description']}"
        return Content(kind=Kind.TEXT, text=said)
    if kind == "button":  # a quick-reply button of a template
        return Content(kind=Kind.TEXT, text=str(body["text"]))
    errors = message.get("errors") or []
    title = errors[0].get("title") if errors and isinstance(errors[0], Mapping) else None
    return Content(kind=Kind.UNSUPPORTED, text=f"[{title or kind}]")


def _status(
    status: Mapping[str, Any], account: AccountId, received_at: datetime
) -> InboundReceipt | None:
    state, wamid = status["status"], status["id"]
    if state not in STATUSES:
        return None
    reason = None
    errors = status.get("errors") or []
    if errors and isinstance(errors[0], Mapping):
        error = errors[0]
        details = (error.get("error_data") or {}).get("details")
        reason = str(details or error.get("message") or error.get("title") or "")
    return InboundReceipt(
        key=f"wa:{account}:{wamid}:{state}",
        sender=_sender(status["recipient_id"], "", account),
        message_id=MessageId(str(wamid)),
        status=STATUSES[state],
        reason=reason or None,
        received_at=received_at,
    )


def _coordinate(value: Any) -> float:
    """A latitude or longitude: a finite number ("nan", "inf" and "1e999" are not)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a coordinate: {value!r:.40}")
    return number
