"""Model content → ``messages.send`` parameters (https://dev.vk.com/ru/method/messages.send).

VK shows one message per call: text up to 4096 characters, any number of attachments
(referenced as ``photo{owner}_{id}_{key}`` / ``doc{owner}_{id}``), a point on the map
(``lat``/``long``) and an inline keyboard. Longer text goes as several messages, the
first carrying the attachment.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from adapters.markup import to_plain
from adapters.text import split_text
from gateway.model import Content, Kind

TEXT_LIMIT = 4096
LABEL_LIMIT = 40  # a keyboard button's label (https://dev.vk.com/ru/api/bots/development/keyboard)
PHOTO_LIMIT = 50 * 1024 * 1024  # photos in messages: up to 50 MB
DOC_LIMIT = 200 * 1024 * 1024  # documents: up to 200 MB
PHOTO_KINDS = frozenset({Kind.PHOTO, Kind.STICKER})
"""Sent as pictures; voice as an audio message; every other file as a document."""


def random_id(key: str | None, part: int) -> int:
    """``random_id`` for part ``part`` of the outbound message ``key``.

    VK drops a second message with the same ``random_id`` from the same community
    ("prevents sending the same message twice"), so deriving it from the outbound id
    makes a retry after a crash harmless. vk_api's ``get_random_id()`` is random per
    call and would not. A positive int32, never 0.
    """
    if key is None:
        return secrets.randbelow(2**31 - 1) + 1
    digest = hashlib.blake2b(f"{key}#{part}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1) + 1


def keyboard(content: Content) -> str | None:
    """Inline buttons: links open in the browser; others send their label as the
    customer's reply (quick replies)."""
    if not content.buttons:
        return None
    rows = []
    for row in content.buttons:
        buttons = []
        for button in row:
            label = button.text[:LABEL_LIMIT]
            if button.url is not None:
                action: dict[str, Any] = {"type": "open_link", "link": button.url, "label": label}
            else:
                action = {"type": "text", "label": label, "payload": json.dumps({"b": button.data})}
            buttons.append({"action": action})
        rows.append(buttons)
    return json.dumps({"inline": True, "buttons": rows}, ensure_ascii=False)


def text_of(content: Content) -> str:
    """What the message says, including what VK has no message type for (VK bots send
    plain text: links are spelled out)."""
    text = to_plain(content.text or "", content.styles)
    extra = ""
    if content.contact is not None:
        who = " ".join(p for p in (content.contact.first_name, content.contact.last_name) if p)
        extra = f"👤 {who}: {content.contact.phone}"
    elif content.venue is not None:
        extra = f"📍 {content.venue.title}, {content.venue.address}"
    elif content.kind is Kind.POLL or content.kind is Kind.UNSUPPORTED:
        extra = "" if text else f"[{content.kind.value}]"
    return "\n".join(p for p in (extra, text) if p)


def messages(content: Content, attachment: str | None) -> list[dict[str, Any]]:
    """The ``messages.send`` parameters of each message ``content`` becomes (without
    ``peer_id`` and ``random_id``)."""
    first: dict[str, Any] = {}
    if attachment:
        first["attachment"] = attachment
    where = content.location or (content.venue.location if content.venue else None)
    if where is not None:
        first["lat"], first["long"] = where.latitude, where.longitude
    markup = keyboard(content)
    text = text_of(content)
    chunks = split_text(text, TEXT_LIMIT) if text else []
    if not chunks and not first:
        chunks = ["…"]  # nothing VK can show: say that something was sent
    params = [{"message": chunk} for chunk in chunks] or [{}]
    params[0] |= first
    if markup is not None:
        params[-1]["keyboard"] = markup  # under the last part, where the reader is
    return params
