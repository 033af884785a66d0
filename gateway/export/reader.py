"""What both halves of an export share: the output, batched reads, expiry times.

Reads go through :class:`gateway.export.lua.Batches` (a batch is one script and one
reply); expiring keys are read with Redis's clock in the same batch, so a remaining
lifetime becomes the exact moment the key expires.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, time
from typing import Any, TextIO

from gateway.config import Settings
from gateway.export.lua import Batches, Command
from gateway.store import keys
from gateway.store.redis import Redis, text

BATCH = 100
"""Contacts per batch (about 20 commands each, run as one script: see ``lua``)."""
PAGE = 1000
"""History entries (message-map keys, statistics days) per later read."""
HEAD = f"{keys.PREFIX}:"


def decode(raw: dict[Any, Any]) -> dict[str, str]:
    """A hash as text, its fields sorted (the same store gives the same line)."""
    return {text(k): text(v) for k, v in sorted(raw.items())}


def as_score(value: float | None) -> int | float | None:
    """A sorted-set score; integral ones (times in ms, operator ids) as ints."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


class Reader:
    """The export's output and its reads of Redis (shared by both halves)."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        out: TextIO,
        since: date | None = None,
        *,
        batch: int = BATCH,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.out = out
        self.since = since
        self.since_at = datetime.combine(since, time(), settings.zone) if since else None
        self.since_ms = int(self.since_at.timestamp() * 1000) if self.since_at else None
        self.batch = batch
        self.chat = settings.staff.chat_id
        self.lines: Counter[str] = Counter()
        self.days: list[str] = []
        self.now_ms = 0
        self.batches = Batches(redis)

    def _write(self, line: dict[str, Any]) -> None:
        self.out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.lines[line["type"]] += 1

    async def _timed(self, calls: list[Command]) -> list[Any]:
        """The replies of ``calls`` read together with Redis's clock, so that remaining
        lifetimes (PTTL) become the exact moments keys expire (the machines' clocks may
        disagree, and a busy client may read the clock long after the batch)."""
        (seconds, micros), *replies = await self._run([("TIME",), *calls])
        self.now_ms = int(seconds) * 1000 + int(micros) // 1000
        return replies

    def _expiry(self, ttl_ms: int) -> int | None:
        return self.now_ms + int(ttl_ms) if int(ttl_ms) > 0 else None

    async def _scan(self, pattern: str) -> AsyncIterator[str]:
        """Keys under the prefix matching ``pattern``, without it."""
        async for key in self.redis.scan_iter(match=HEAD + pattern, count=1000):
            yield text(key)[len(HEAD) :]

    @staticmethod
    def _with_ttl(read: str, found: list[str]) -> list[Command]:
        """``read`` and PTTL of each key (given without the prefix)."""
        return [call for k in found for call in ((read, HEAD + k), ("PTTL", HEAD + k))]

    async def _run(self, calls: list[Command]) -> list[Any]:
        """The commands' replies, read in one round trip."""
        return await self.batches.read(calls)
