"""Telegram's message entities ↔ :class:`gateway.model.Style`.

Entities count UTF-16 code units (https://core.telegram.org/api/entities#entity-length:
🙂 is 2 of them); styles count Python characters. Only formatting is kept: mentions,
hashtags, bare URLs and the like are found again by every client from the text itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiogram.types import MessageEntity, User

from gateway.model import Content, Style

KINDS = {
    "bold": "bold",
    "italic": "italic",
    "underline": "underline",
    "strikethrough": "strike",
    "spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "text_link": "link",
    "blockquote": "quote",
    "expandable_blockquote": "quote",
}
ENTITY = {
    "bold": "bold",
    "italic": "italic",
    "underline": "underline",
    "strike": "strikethrough",
    "spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "link": "text_link",
    "quote": "blockquote",
}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _python_index(text: str) -> Sequence[int]:
    """UTF-16 position → Python index (a position inside a surrogate pair maps to its
    character's end)."""
    if max(text, default="") <= "\uffff":  # no surrogate pairs: the same positions
        return range(len(text) + 1)
    index = [0]
    for i, char in enumerate(text):
        index += [i + 1] * (2 if ord(char) > 0xFFFF else 1)
    return index


def from_entities(text: str | None, entities: Iterable[Any] | None) -> tuple[Style, ...]:
    """The formatting among ``entities`` (aiogram's objects or the raw dicts)."""
    if not text or not entities:
        return ()
    index = _python_index(text)
    styles = []
    for entity in entities:
        get = entity.get if isinstance(entity, dict) else lambda k, e=entity: getattr(e, k, None)
        kind = KINDS.get(str(get("type")))
        offset, length = get("offset"), get("length")
        if kind is None or not isinstance(offset, int) or not isinstance(length, int):
            continue
        start = index[min(max(offset, 0), len(index) - 1)]
        end = index[min(max(offset + length, 0), len(index) - 1)]
        if end > start:
            url, language = get("url"), get("language")
            styles.append(
                Style(
                    kind=kind,
                    offset=start,
                    length=end - start,
                    url=url if kind == "link" else None,
                    language=language if kind == "pre" else None,
                )
            )
    return tuple(styles)


def to_entities(content: Content) -> list[MessageEntity] | None:
    """Entities for the content's text: its styles and its mentions — ``text_mention``
    entities link the name to the user, who is notified, even without a @username
    (https://core.telegram.org/bots/api#messageentity)."""
    text = content.text or ""
    found = [
        _entity(text, s.offset, s.length, ENTITY[s.kind], url=s.url, language=s.language)
        for s in content.styles
        if s.offset + s.length <= len(text)
    ]
    found += [
        _entity(
            text,
            m.offset,
            m.length,
            "text_mention",
            user=User(
                id=int(m.user_id), is_bot=False, first_name=text[m.offset : m.offset + m.length]
            ),
        )
        for m in content.mentions
        if m.offset + m.length <= len(text) and m.user_id.isdigit()
    ]
    return found or None


def _entity(text: str, offset: int, length: int, kind: str, **extra: Any) -> MessageEntity:
    return MessageEntity(
        type=kind,
        offset=utf16_len(text[:offset]),
        length=utf16_len(text[offset : offset + length]),
        **{k: v for k, v in extra.items() if v is not None},
    )
