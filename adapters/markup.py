"""Formatting between messengers: :class:`gateway.model.Style` spans ↔ WhatsApp markup
↔ plain text (Telegram's entities are converted in :mod:`adapters.telegram`).

- **WhatsApp** writes formatting into the text
  (https://faq.whatsapp.com/539178204879377): ``*bold*``, ``_italic_``, ``~strike~``,
  ```` ```monospace``` ````, ```code```, ``> quote`` lines. A marker must touch the
  text it wraps, so spaces at a span's ends move outside it. Underline and spoilers
  have no markup and are dropped; a link becomes ``text (url)``.
- **Plain** messengers (VK, Viber) keep the words: a link becomes ``text (url)`` (its
  target would be lost otherwise), everything else is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.model import Style

WHATSAPP = {
    "bold": ("*", "*"),
    "italic": ("_", "_"),
    "strike": ("~", "~"),
    "code": ("`", "`"),
    "pre": ("```", "```"),
}


def to_whatsapp(text: str, styles: Sequence[Style]) -> str:
    return _render(text, styles, WHATSAPP, quotes=True)


def to_plain(text: str, styles: Sequence[Style]) -> str:
    return _render(text, styles, {}, quotes=False)


def _render(
    text: str, styles: Sequence[Style], marks: dict[str, tuple[str, str]], *, quotes: bool
) -> str:
    """``text`` with each style's markers inserted; nested spans close inside out."""
    events: list[tuple[int, int, int, str]] = []  # (position, closes first, order, insert)
    spans = sorted(_trimmed(text, styles), key=lambda s: (s.offset, -s.length))
    for order, style in enumerate(spans):
        start, end = style.offset, style.offset + style.length
        if style.kind == "link" and style.url and style.url != text[start:end]:
            events.append((end, 0, -order, f" ({style.url})"))
        elif style.kind == "quote" and quotes:
            line_starts = [start] + [i + 1 for i in range(start, end - 1) if text[i] == "\n"]
            events += [(i, 1, order, "> ") for i in line_starts]
        elif style.kind in marks:
            opening, closing = marks[style.kind]
            events += [(start, 1, order, opening), (end, 0, -order, closing)]
    out, at = [], 0
    for position, _, _, insert in sorted(events):
        out += [text[at:position], insert]
        at = position
    out.append(text[at:])
    return "".join(out)


def _trimmed(text: str, styles: Sequence[Style]) -> list[Style]:
    """Styles inside the text, without the spaces at their ends (markup must touch the
    words); spans of nothing but spaces are dropped."""
    kept = []
    for style in styles:
        start = max(0, style.offset)
        end = min(len(text), style.offset + style.length)
        if style.kind not in ("pre", "quote"):
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
        if end > start:
            kept.append(style.model_copy(update={"offset": start, "length": end - start}))
    return kept


# A marker pair around text that starts and ends with a non-space, not inside a word
# (WhatsApp does not format snake_case or 2*3*4). ``` blocks may span lines.
_PATTERNS = [
    ("pre", re.compile(r"```(?=\S)(.+?)(?<=\S)```", re.DOTALL)),
    ("code", re.compile(r"(?<![\w`])`(?=[^\s`])([^`\n]+?)(?<=[^\s`])`(?![\w`])")),
    ("bold", re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")),
    ("italic", re.compile(r"(?<![\w_])_(?=[^\s_])([^_\n]+?)(?<=[^\s_])_(?![\w_])")),
    ("strike", re.compile(r"(?<![\w~])~(?=[^\s~])([^~\n]+?)(?<=[^\s~])~(?![\w~])")),
]


def from_whatsapp(text: str) -> tuple[str, tuple[Style, ...]]:
    """WhatsApp markup → the text without its markers, and the styles they made."""
    styles: list[Style] = []
    out = _unmark(text, 0, styles)
    return out, tuple(sorted(styles, key=lambda s: (s.offset, -s.length)))


def _unmark(text: str, base: int, styles: list[Style]) -> str:
    """Strip the earliest marker pair, recursing into what it wraps (``*_both_*``)."""
    out = []
    rest = text
    while rest:
        found = [(m.start(), kind, m) for kind, p in _PATTERNS if (m := p.search(rest))]
        if not found:
            out.append(rest)
            break
        _, kind, match = min(found, key=lambda f: f[0])
        out.append(rest[: match.start()])
        offset = base + sum(len(part) for part in out)
        inner = match.group(1)
        if kind not in ("pre", "code"):  # code is verbatim
            inner = _unmark(inner, offset, styles)
        styles.append(Style(kind=kind, offset=offset, length=len(inner)))
        out.append(inner)
        rest = rest[match.end() :]
    return "".join(out)
