"""Quick replies: prepared answers operators send with ``//name`` (or ``/t name``).

Their text may use macros, each with an optional default after ``|`` for when the
value is empty: ``{contact.name}``, ``{contact.first_name}``, ``{operator.name}``,
``{process.number}``, ``{company.name}`` — e.g. ``Hello, {contact.first_name|there}!``.
Unknown macros are a config error, so a typo never reaches a customer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MACROS = frozenset(
    {"contact.name", "contact.first_name", "operator.name", "process.number", "company.name"}
)
_MACRO = re.compile(r"\{([a-z_]+\.[a-z_]+)(?:\|([^{}]*))?\}")


def unknown_macros(text: str) -> list[str]:
    """The macros in ``text`` that :func:`expand` would not know."""
    return [m.group(1) for m in _MACRO.finditer(text) if m.group(1) not in MACROS]


def expand(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every macro replaced by its value, or its default when empty."""

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2) or ""
        return values.get(name, "").strip() or default

    return _MACRO.sub(value, text)


def first_name(name: str) -> str:
    """The first word of a display name ("Ivan Petrov" → "Ivan")."""
    return name.split()[0] if name.split() else ""
