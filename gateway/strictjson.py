"""Standard JSON only (RFC 8259), for bodies from outside: Python's parser also takes
``NaN`` and ``Infinity`` and turns a huge number into ``inf``, which no platform or
client sends on purpose and no model can store."""

from __future__ import annotations

import json
import math
from typing import Any


def _finite(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"number out of range: {literal[:20]}")
    return number


def _not_json(literal: str) -> Any:
    raise ValueError(f"{literal} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)
"""Built once: ``json.loads`` with hooks builds a decoder and its C scanner per call,
about a third of the parse of a webhook body."""


def loads(body: bytes | str) -> Any:
    """Parse ``body``; :class:`ValueError` (``json.JSONDecodeError`` is one) if it is
    not standard JSON. Bytes are decoded as ``json.loads`` decodes them (UTF-8, -16 or
    -32, found from the first bytes)."""
    if isinstance(body, bytes | bytearray):
        text = body.decode(json.detect_encoding(body), "surrogatepass")
    elif body.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
    else:
        text = body
    return _DECODER.decode(text)
