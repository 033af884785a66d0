"""``antispam:``: flood protection, spam rules and what a banned person is told."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from gateway.config.sections import _NAME, _Section


class SpamRule(_Section):
    """A message whose text matches ``pattern`` (a Python regular expression, searched
    anywhere in the text; ``(?i)`` for any case) goes to the line's Spam topic instead
    of the customer's, and opens no task."""

    name: str = Field(pattern=_NAME)
    pattern: str = Field(min_length=1, max_length=1000)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class AntispamSettings(_Section):
    max_messages_per_minute: int | None = Field(None, ge=1, le=1000)
    """A person writing more than this in a minute: the rest of that minute are not
    posted one by one but together, in one staff message with their count, when the
    minute is over. Unset: no limit."""
    ban_reply: str | None = Field(None, min_length=1, max_length=4096)
    """Sent (once a day at most) to a banned person who writes. Unset: silence."""
    rules: tuple[SpamRule, ...] = ()
