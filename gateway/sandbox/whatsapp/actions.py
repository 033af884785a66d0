"""What customers do in the emulated WhatsApp: write (text, media, location, contacts,
button and list replies, reactions, unsupported things), read and receive messages.

Each message is stored, opens (or renews) the 24-hour customer service window and goes
to the number's webhook in the shape of Meta's ``messages`` webhook
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples):
``from``, ``id`` (``wamid.…``), ``timestamp`` (seconds, as a string), ``type`` and the
type's object; ``context: {from, id}`` when it replies to a message. Files customers send
are put into the media store, so the gateway fetches them as from Meta: ``GET
/{media_id}``, then the URL with the bearer token.
"""

from __future__ import annotations

from dataclasses import dataclass

from .media import guess_mime, sniff_image
from .models import JsonDict, Message, Number, User, wamid
from .state import WhatsAppWorld

UNSUPPORTED_ERROR: JsonDict = {
    "code": 131051,
    "title": "Message type unknown",
    "message": "Message type unknown",
    "error_data": {"details": "Message type is currently not supported."},
}


@dataclass
class Content:
    """What a customer sends: exactly one of the fields (``caption`` and ``voice`` go
    with media)."""

    text: str = ""
    image: bytes | None = None
    caption: str | None = None
    document: tuple[str, bytes] | None = None
    audio: bytes | None = None
    voice: bool = False
    video: bytes | None = None
    sticker: bytes | None = None
    location: tuple[float, float] | None = None
    contacts: list[tuple[str, str]] | None = None
    button_reply: tuple[str, str] | None = None
    reaction: tuple[str, str] | None = None
    unsupported: bool = False
    reply_to: str | None = None


def build(
    world: WhatsAppWorld, number: Number, user: User, content: Content
) -> tuple[Message, JsonDict]:
    """The stored message and its webhook object (not stored, not posted yet)."""
    kinds = [
        name
        for name, value in (
            ("image", content.image),
            ("document", content.document),
            ("audio", content.audio),
            ("video", content.video),
            ("sticker", content.sticker),
            ("location", content.location),
            ("contacts", content.contacts),
            ("interactive", content.button_reply),
            ("reaction", content.reaction),
        )
        if value is not None
    ]
    if content.unsupported:
        kinds.append("unsupported")
    if content.text and kinds:
        raise ValueError("text goes alone; media take a caption")
    if len(kinds) > 1:
        raise ValueError(f"send one thing at a time, got {kinds}")
    kind = kinds[0] if kinds else "text"
    if kind == "text" and not content.text:
        raise ValueError("nothing to send: give text or one kind of content")
    message = Message(
        id=wamid(user.wa_id, inbound=True),
        direction="in",
        phone_number_id=number.id,
        wa_id=user.wa_id,
        type=kind,
        timestamp=int(world.now()),
    )
    obj: JsonDict = {"from": user.wa_id, "id": message.id, "timestamp": str(message.timestamp)}
    if content.reply_to is not None:
        message.context = _context(world, number, user, content.reply_to)
    if kind == "text":
        message.text = content.text
        message.payload = {"body": content.text}
    elif kind in ("image", "document", "audio", "video", "sticker"):
        _media(world, number, message, content)
    elif kind == "interactive":
        _button_reply(world, number, user, message, content)
    elif kind == "unsupported":
        obj["errors"] = [dict(UNSUPPORTED_ERROR)]
    else:
        _other(world, number, user, message, content)
    if message.context is not None:
        obj["context"] = dict(message.context)
    obj["type"] = kind
    if kind != "unsupported":
        obj[kind] = message.payload["contacts"] if kind == "contacts" else dict(message.payload)
    return message, obj


def _context(world: WhatsAppWorld, number: Number, user: User, message_id: str) -> JsonDict:
    quoted = world.messages.get(message_id)
    if quoted is None or (quoted.phone_number_id, quoted.wa_id) != (number.id, user.wa_id):
        raise ValueError(f"no message {message_id} in the conversation of {user.wa_id}")
    sender = user.wa_id if quoted.direction == "in" else number.display_phone_number
    return {"from": sender, "id": quoted.id}


def _media(world: WhatsAppWorld, number: Number, message: Message, content: Content) -> None:
    kind = message.type
    filename: str | None = None
    if kind == "image":
        data = content.image or b""
        mime = sniff_image(data)
    elif kind == "document":
        assert content.document is not None
        filename, data = content.document
        mime = guess_mime(filename)
    elif kind == "audio":
        data = content.audio or b""
        mime = "audio/ogg; codecs=opus" if content.voice else "audio/mpeg"
    elif kind == "video":
        data, mime = content.video or b"", "video/mp4"
    else:
        data, mime = content.sticker or b"", "image/webp"
    if not data:
        raise ValueError("a file to send must not be empty")
    captioned = kind in ("image", "video", "document")
    if content.caption and not captioned:
        raise ValueError(f"{kind} messages have no caption")
    stored = world.media.add(number.id, data, mime, filename)
    caption = content.caption if captioned else None
    payload: JsonDict = dict(stored.webhook_object(caption=caption))
    if kind == "audio":
        payload["voice"] = content.voice
    if kind == "sticker":
        payload["animated"] = False
    message.payload = payload
    message.text = caption
    message.media, message.media_id, message.mime_type = data, stored.id, mime
    message.filename = filename


def _button_reply(
    world: WhatsAppWorld, number: Number, user: User, message: Message, content: Content
) -> None:
    """A tap on a reply button (or a list row) of the business's latest interactive
    message offering that id; the message is quoted in ``context``."""
    assert content.button_reply is not None
    choice_id, title = content.button_reply
    for sent in reversed(world.conversation(number.id, user.wa_id)):
        if sent.direction != "out" or sent.type != "interactive":
            continue
        action = sent.payload.get("action", {})
        if sent.payload.get("type") == "button":
            ids = [b["reply"]["id"] for b in action.get("buttons", [])]
            reply_kind = "button_reply"
        else:
            ids = [r["id"] for s in action.get("sections", []) for r in s.get("rows", [])]
            reply_kind = "list_reply"
        if choice_id in ids:
            message.payload = {"type": reply_kind, reply_kind: {"id": choice_id, "title": title}}
            message.text = title
            message.context = {"from": number.display_phone_number, "id": sent.id}
            return
    raise ValueError(f"no interactive message offering {choice_id!r} to {user.wa_id}")


def _other(
    world: WhatsAppWorld, number: Number, user: User, message: Message, content: Content
) -> None:
    if content.location is not None:
        latitude, longitude = content.location
        message.payload = {"latitude": latitude, "longitude": longitude}
    elif content.contacts is not None:
        cards = []
        for name, phone in content.contacts:
            first, _, last = name.partition(" ")
            card_name = {"formatted_name": name, "first_name": first}
            if last:
                card_name["last_name"] = last
            digits = "".join(ch for ch in phone if ch.isdigit())
            phones = [{"phone": phone, "wa_id": digits, "type": "CELL"}]
            cards.append({"name": card_name, "phones": phones})
        message.payload = {"contacts": cards}
    elif content.reaction is not None:
        target, emoji = content.reaction
        quoted = world.messages.get(target)
        if quoted is None or (quoted.phone_number_id, quoted.wa_id) != (number.id, user.wa_id):
            raise ValueError(f"no message {target} in the conversation of {user.wa_id}")
        message.payload = {"message_id": target, "emoji": emoji}
        message.text = emoji


def send(
    world: WhatsAppWorld, phone_number_id: str, batch: list[tuple[str, Content]]
) -> list[JsonDict]:
    """Customers write: every message is stored, then all go in one webhook POST."""
    number = world.number(phone_number_id)
    built = [(world.user(wa_id), content) for wa_id, content in batch]
    if not built:
        raise ValueError("nothing to send")
    items: list[tuple[User, JsonDict]] = []
    for user, content in built:
        message, obj = build(world, number, user, content)
        world.add_message(message)
        items.append((user, obj))
    world.post_messages(number, items)
    return [obj for _, obj in items]


def read(world: WhatsAppWorld, phone_number_id: str, wa_id: str, message_id: str) -> None:
    """A customer opens the chat: ``read`` for this message (``delivered`` first if it
    was not yet) and every earlier business message not yet read."""
    world.number(phone_number_id)
    target = world.messages.get(message_id)
    if target is None or target.direction != "out" or target.wa_id != wa_id:
        raise ValueError(f"no business message {message_id} to {wa_id}")
    if target.status not in ("sent", "delivered", "read"):
        raise ValueError(f"message {message_id} is {target.status}: it never reached {wa_id}")
    for message in world.conversation(phone_number_id, wa_id):
        if message.direction == "out" and message.status in ("sent", "delivered"):
            world.set_status(message, "delivered")
            world.set_status(message, "read")
        if message is target:
            break


def deliver(world: WhatsAppWorld, phone_number_id: str, wa_id: str, message_id: str) -> None:
    """The customer's phone receives a business message (when ``auto_deliver`` is off)."""
    target = world.messages.get(message_id)
    where = (target.phone_number_id, target.wa_id) if target is not None else None
    if target is None or target.direction != "out" or where != (phone_number_id, wa_id):
        raise ValueError(f"no business message {message_id} to {wa_id}")
    if target.status != "sent":
        raise ValueError(f"message {message_id} is {target.status}, not sent")
    world.set_status(target, "delivered")
