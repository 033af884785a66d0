"""VK community events (Callback API and Bots Long Poll, API 5.199) →
:class:`gateway.model.InboundMessage`.

Both inbound modes deliver the same envelope: ``{"type", "event_id", "v", "object",
"group_id"}`` (the Callback API adds ``secret``). ``event_id`` is the idempotency key
("if it came twice or more, ignore it": https://dev.vk.com/ru/api/callback/getting-started).
Since API 5.103 ``message_new.object`` is ``{"message": …, "client_info": …}``;
``message_edit.object`` is the message itself
(https://dev.vk.com/ru/api/community-events/json-schema).

A message with several attachments becomes one inbound message per attachment (the
first carries the text), the way Telegram sends an album: each is forwarded and
answered on its own. Names are not in the event: the adapter fills them in later
(``users.get``); until then the sender is "VK user <id>".
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
    InboundStatus,
    Kind,
    Location,
    MessageId,
    PlatformUserId,
    Sender,
)

MESSAGE_EVENTS = frozenset({"message_new", "message_edit"})
STATUS_EVENTS = {"message_allow": True, "message_deny": False}
PEER_CHAT_FROM = 2_000_000_000
"""peer_id of a group chat (conversation) is 2e9 + its local id; of a user, the user id."""


def parse_event(
    payload: Mapping[str, Any], *, account: AccountId, received_at: datetime
) -> Sequence[InboundMessage | InboundStatus]:
    """Normalise one event; ``[]`` for events the gateway does not use. Raises
    ``BadPayload`` for anything that is not a VK event as documented."""
    if not isinstance(payload, Mapping):
        raise BadPayload(Channel.VK, "an event is a JSON object")
    kind, event_id = payload.get("type"), payload.get("event_id")
    if not isinstance(kind, str) or not isinstance(event_id, str) or not event_id:
        raise BadPayload(Channel.VK, "an event has a string type and event_id")
    if kind not in MESSAGE_EVENTS and kind not in STATUS_EVENTS:
        return []
    obj = payload.get("object")
    if not isinstance(obj, Mapping):
        raise BadPayload(Channel.VK, f"{kind} without an object")
    if kind in STATUS_EVENTS:
        return [_status(obj, STATUS_EVENTS[kind], event_id, account, received_at)]
    message = obj.get("message") if kind == "message_new" else obj
    if not isinstance(message, Mapping):
        raise BadPayload(Channel.VK, f"{kind} without a message (API version below 5.103?)")
    try:
        return _messages(message, kind == "message_edit", event_id, account, received_at)
    except (AttributeError, LookupError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise BadPayload(Channel.VK, f"malformed {kind}: {exc!r}") from exc


def _status(
    obj: Mapping[str, Any], allowed: bool, event_id: str, account: AccountId, received_at: datetime
) -> InboundStatus:
    """``message_allow`` ``{user_id, key}`` / ``message_deny`` ``{user_id}``."""
    try:
        user = _int(obj["user_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadPayload(Channel.VK, f"a subscription event without a user: {exc!r}") from exc
    sender = _sender(account, user, user)
    return InboundStatus(
        key=f"vk:{account}:{event_id}", sender=sender, allowed=allowed, received_at=received_at
    )


def _sender(account: AccountId, user: int, peer: int) -> Sender:
    return Sender(
        account=account,
        channel=Channel.VK,
        user_id=PlatformUserId(str(user)),
        chat_id=ChatId(str(peer)),
        display_name=f"VK user {user}",
    )


def _messages(
    message: Mapping[str, Any],
    edited: bool,
    event_id: str,
    account: AccountId,
    received_at: datetime,
) -> list[InboundMessage]:
    from_id, peer_id = _int(message["from_id"]), _int(message["peer_id"])
    if from_id <= 0:
        return []  # written by a community (e.g. our own outgoing copy): not a customer
    message_id = _int(message.get("id") or message.get("conversation_message_id") or 0)
    sender = _sender(account, from_id, peer_id)
    text = str(message.get("text") or "")
    extra = _extras(message)
    if extra:
        text = f"{text}\n\n{extra}".strip()
    reply = message.get("reply_message")
    reply_to, quoted = None, None
    if isinstance(reply, Mapping) and (reply.get("id") or reply.get("conversation_message_id")):
        reply_to = MessageId(str(reply.get("id") or reply.get("conversation_message_id")))
        quoted = str(reply.get("text") or "") or None
    contents = _contents(message, account, text)
    sent_at = datetime.fromtimestamp(_int(message.get("update_time") or message["date"]), UTC)
    return [
        InboundMessage(
            key=f"vk:{account}:{event_id}" + (f":{i}" if i else ""),
            sender=sender,
            message_id=MessageId(str(message_id) + (f".{i}" if i else "")),
            sent_at=sent_at,
            received_at=received_at,
            content=content,
            reply_to=reply_to if i == 0 else None,
            quoted=quoted if i == 0 else None,
            edited=edited,
            group_chat=peer_id >= PEER_CHAT_FROM,
        )
        for i, content in enumerate(contents)
    ]


def _contents(message: Mapping[str, Any], account: AccountId, text: str) -> list[Content]:
    items: list[Content] = []
    for attachment in message.get("attachments") or []:
        content = _attachment(attachment, account)
        if content is not None:
            items.append(content)
    geo = message.get("geo")
    if isinstance(geo, Mapping):
        where = geo["coordinates"]
        location = Location(
            latitude=_coordinate(where["latitude"]), longitude=_coordinate(where["longitude"])
        )
        items.append(Content(kind=Kind.LOCATION, location=location))
    if not items:
        return [Content(kind=Kind.TEXT if text else Kind.UNSUPPORTED, text=text or None)]
    first = items[0]
    if first.kind in (Kind.LOCATION, Kind.STICKER) and text:
        # These kinds carry no caption: the text goes first, as its own message.
        return [Content(kind=Kind.TEXT, text=text), *items]
    return [first.model_copy(update={"text": text or first.text}), *items[1:]]


def _attachment(attachment: Mapping[str, Any], account: AccountId) -> Content | None:
    kind = attachment["type"]
    body = attachment.get(kind)
    if not isinstance(body, Mapping):
        return None
    page = f"{kind}{body.get('owner_id', '')}_{body.get('id', '')}"
    # What messages.send needs to attach it again (the key opens a private one).
    ref = f"{page}_{body['access_key']}" if body.get("access_key") else page
    match kind:
        case "photo":
            size = max(
                body["sizes"], key=lambda s: _int(s.get("width", 0)) * _int(s.get("height", 0))
            )
            file = Attachment(
                account=account,
                file_id=str(size["url"]),
                file_unique_id=ref,
                width=_int(size.get("width", 0)) or None,
                height=_int(size.get("height", 0)) or None,
            )
            return Content(kind=Kind.PHOTO, attachment=file)
        case "doc":
            file = Attachment(
                account=account,
                file_id=str(body["url"]),
                file_unique_id=ref,
                file_name=str(body.get("title") or f"file.{body.get('ext', 'bin')}"),
                size=_int(body.get("size", 0)) or None,
            )
            return Content(kind=Kind.DOCUMENT, attachment=file)
        case "audio_message":
            file = Attachment(
                account=account,
                file_id=str(body.get("link_ogg") or body["link_mp3"]),
                file_unique_id=ref,
                mime_type="audio/ogg" if body.get("link_ogg") else "audio/mpeg",
                duration=_int(body.get("duration", 0)) or None,
            )
            return Content(kind=Kind.VOICE, attachment=file)
        case "sticker":
            images = body.get("images") or []
            if not images:
                return Content(kind=Kind.TEXT, text="[sticker]")
            largest = max(images, key=lambda i: _int(i.get("width", 0)))
            file = Attachment(account=account, file_id=str(largest["url"]), file_unique_id=ref)
            return Content(kind=Kind.STICKER, attachment=file)
        case "video":
            # Video files are not downloadable through the API: staff get the link.
            return Content(kind=Kind.TEXT, text=f"🎬 https://vk.com/{page}")
        case "wall":
            return Content(kind=Kind.TEXT, text=f"📰 https://vk.com/{page}")
        case "link":
            title = body.get("title")
            return Content(
                kind=Kind.TEXT, text=f"🔗 {title}\n{body['url']}" if title else str(body["url"])
            )
        case _:
            return Content(kind=Kind.UNSUPPORTED, text=f"[{kind}]")


def _extras(message: Mapping[str, Any]) -> str:
    """Forwarded messages, quoted as text under the message."""
    forwarded = message.get("fwd_messages") or []
    lines = []
    for item in forwarded[:10]:
        if isinstance(item, Mapping):
            said = str(item.get("text") or "[attachment]")
            lines.append(f"↪ {item.get('from_id', '?')}: {said}")
    return "\n".join(lines)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"not an integer: {value!r}")
    return int(value)


def _coordinate(value: Any) -> float:
    """A latitude or longitude: a finite number ("nan", "inf" and "1e999" are not)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a coordinate: {value!r:.40}")
    return number
