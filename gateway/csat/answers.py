"""What the survey looks like on each messenger, and what counts as an answer (pure).

The question carries five buttons where the messenger has them: Telegram's inline
buttons come back as a callback (``csat:<n>:<process>/<task>``, so a press on an old
survey still names its task); VK's inline text buttons and Viber's reply buttons come
back as the customer's own message with the label (VK) or the button's data (Viber),
which is the same text. WhatsApp allows three reply buttons, too few for 1-5, so there
the question asks for a number instead.

:func:`rating_of` runs on every customer text, before any Redis call: anything longer
than a few characters is rejected by its length alone, a short text without a digit
1-5 or a star by one set look-up (well under a microsecond either way).
"""

from __future__ import annotations

import re

from gateway.config.integrations import CsatSettings
from gateway.model import CALLBACK_DATA_LIMIT, Button, Channel, Content, Kind

PRESS = "csat"
"""Callback data prefix of the survey's Telegram buttons."""
LONGEST = 16
"""No rating is longer (``⭐⭐⭐⭐⭐``, ``5 / 5``, ``5 ⭐``): longer texts are not ratings."""
NUMBER_HINT = "Reply with a number from 1 to 5."
_STAR = "[⭐★🌟]"
_SHAPES = (
    re.compile(r"([1-5])"),
    re.compile(r"([1-5])\s*/\s*5"),
    re.compile(rf"([1-5])\s*{_STAR}+"),
    re.compile(rf"{_STAR}\s*([1-5])"),
)
_STARS = re.compile(rf"{_STAR}{{1,5}}")
_MARKS = frozenset("12345⭐★🌟")
"""Every rating has one of these: "ok", "thanks"… are rejected without a regex."""


def rating_of(text: str | None) -> int | None:
    """The rating a customer's text gives (1-5), or ``None`` when it is not one:
    ``5``, ``5⭐``, ``5 ⭐``, ``⭐ 5``, ``⭐⭐⭐⭐⭐``, ``4/5``."""
    if not text or len(text) > LONGEST or _MARKS.isdisjoint(text):
        return None
    said = text.replace("\ufe0f", "").strip()  # emoji variation selectors
    for shape in _SHAPES:
        found = shape.fullmatch(said)
        if found is not None:
            return int(found.group(1))
    if _STARS.fullmatch(said):
        return len(said)
    return None


def label(rating: int) -> str:
    """A button's label, which VK and Viber send back as the customer's message."""
    return f"{rating} ⭐"


def press_data(rating: int, survey_id: str) -> str:
    """A Telegram button's callback data: the rating and the survey it answers (the
    survey is left out if it would not fit Telegram's 64 bytes: the press then answers
    the chat's latest survey)."""
    data = f"{PRESS}:{rating}:{survey_id}"
    return data if len(data.encode()) <= CALLBACK_DATA_LIMIT else f"{PRESS}:{rating}"


def parse_press(data: str) -> tuple[int, str | None] | None:
    """``(rating, survey id or None)`` from a survey button's data; ``None`` if it is not
    one (a customer cannot press anything else, but data is theirs to forge)."""
    scope, _, rest = data.partition(":")
    number, _, survey_id = rest.partition(":")
    if scope != PRESS or len(number) != 1 or number not in "12345":
        return None
    return int(number), survey_id or None


def question(channel: Channel, settings: CsatSettings, survey_id: str) -> Content:
    """The survey as sent on ``channel``."""
    if channel is Channel.WHATSAPP:
        return Content(kind=Kind.TEXT, text=f"{settings.question}\n\n{NUMBER_HINT}")
    if channel is Channel.TELEGRAM:
        row = tuple(Button(text=label(n), data=press_data(n, survey_id)) for n in range(1, 6))
    else:  # VK (the label comes back) and Viber (the data comes back): a rating's text
        row = tuple(Button(text=label(n), data=label(n)) for n in range(1, 6))
    return Content(kind=Kind.TEXT, text=settings.question, buttons=(row,))
