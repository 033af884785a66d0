"""Cursor pages over every contact (or every contact with a process), with filters.

The gateway keeps no global list of contacts or processes (each lives under its own
key), so a listing walks the keyspace with ``SCAN``: O(page) per request, however many
there are, and a replica restart does not invalidate a cursor. The cursor is opaque to
clients: the SCAN position of the batch being read and how many of its matches were
already returned. Like SCAN itself, a walk returns every item that exists for the whole
walk at least once; an item created or changed during the walk may be missed or seen
twice. Each request reads a bounded number of batches, so a very selective filter can
return a short (even empty) page with a cursor to continue from.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import Field

from gateway.api.errors import invalid
from gateway.api.registry import In
from gateway.store.redis import Redis, text

T = TypeVar("T")
BATCH = 500
"""Keys a SCAN step looks at (its COUNT)."""
BATCHES_PER_PAGE = 40
"""SCAN steps one request may take before answering with what it found."""
MAX_LIMIT = 200


class PageQuery(In):
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    """Items per page (at most 200)."""
    cursor: str | None = Field(None, max_length=200)
    """``next_cursor`` of the previous page (leave out for the first)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    scan: int
    """The SCAN cursor that produced the batch being read."""
    skip: int
    """Matches of that batch already returned."""

    def encode(self) -> str:
        raw = json.dumps([self.scan, self.skip], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str | None) -> Cursor:
        if value is None:
            return cls(0, 0)
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            scan, skip = json.loads(raw)
        except (binascii.Error, ValueError, TypeError):
            raise invalid(["query", "cursor"], "Not a cursor this API gave.") from None
        if not (isinstance(scan, int) and isinstance(skip, int)) or not (
            0 <= scan < 2**64 and 0 <= skip < 2**31  # what Redis and a page can hold
        ):
            raise invalid(["query", "cursor"], "Not a cursor this API gave.")
        return cls(scan, skip)


async def walk(
    redis: Redis,
    prefix: str,
    cursor: Cursor,
    limit: int,
    expand: Callable[[list[str]], Awaitable[list[T]]],
) -> tuple[list[T], Cursor | None]:
    """Up to ``limit`` items from the keys ``prefix<id>`` (ids in digits): ``expand``
    turns a batch of ids into its matching items, in a stable order. Returns the items
    and the cursor of the rest (``None``: the walk is over)."""
    found: list[T] = []
    scan, skip = cursor.scan, cursor.skip
    for _ in range(BATCHES_PER_PAGE):
        after, raw = await redis.scan(scan, match=f"{prefix}*", count=BATCH)
        ids = sorted(
            {
                key.removeprefix(prefix)
                for key in map(text, raw)
                if key.removeprefix(prefix).isdigit()
            },
            key=int,
        )
        items = (await expand(ids))[skip:] if ids else []
        room = limit - len(found)
        if len(items) > room:
            found += items[:room]
            return found, Cursor(scan, skip + room)
        found += items
        skip = 0
        if int(after) == 0:
            return found, None
        scan = int(after)
        if len(found) == limit:
            break
    return found, Cursor(scan, 0)
