"""Standard JSON only (RFC 8259), for bodies from outside: Python's parser also takes
``NaN`` and ``Infinity`` and turns a huge number into ``inf``, which no platform or
client sends on purpose and no model can store."""

from __future__ import annotations

import json
import math
from typing import Any


def loads(body: bytes | str) -> Any:
    """Parse ``body``; :class:`ValueError` (``json.JSONDecodeError`` is one) if it is
    not standard JSON."""
    return json.loads(body, parse_constant=_not_json, parse_float=_finite)


def _finite(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"number out of range: {literal[:20]}")
    return number


def _not_json(literal: str) -> Any:
    raise ValueError(f"{literal} is not JSON")
