"""Timers that survive restarts and fire once across replicas.

All timers live in one Redis sorted set: member ``kind:contact`` (at most one timer of
a kind per contact), score = when it is due (ms). They are set or cleared in the same
transaction that changes the state they belong to (see ``ProcessStore``).

A tick claims due timers atomically: the claim pushes each member's score into the
future by a lease instead of removing it, so

- two replicas ticking at once never get the same timer;
- a replica that dies after claiming leaves the timer to fire again when the lease
  ends (nothing is lost);
- after downtime each overdue timer fires once — one per contact and kind, not one
  per missed interval (no storm).

When handled, a timer is removed only if nobody re-armed it meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import structlog

from gateway.lifecycle import raise_if_cancelling
from gateway.logging import new_context
from gateway.store import keys
from gateway.store.redis import RETRYABLE, Redis, text

log = structlog.get_logger(__name__)

# ARGV[1] now (ms), ARGV[2] lease (ms), ARGV[3] how many. Returns member, score pairs.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local claimed = {}
for i = 1, #due, 2 do
  local until_ = tonumber(ARGV[1]) + tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], until_, due[i])
  claimed[#claimed + 1] = due[i]
  claimed[#claimed + 1] = tostring(until_)
end
return claimed
"""
# Remove a handled timer unless it was re-armed (its score changed) since the claim.
_DONE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""

Handler = Callable[[str, datetime], Awaitable[None]]
"""Called with the contact id and the tick's time; must be idempotent."""


def member(kind: str, contact_id: str) -> str:
    return f"{kind}:{contact_id}"


class Scheduler:
    def __init__(
        self,
        redis: Redis,
        handlers: Mapping[str, Handler],
        *,
        clock: Callable[[], datetime],
        interval: float = 1.0,
        lease: float = 60.0,
        batch: int = 100,
    ) -> None:
        self.redis = redis
        self.handlers = handlers
        self.clock = clock
        self.interval = interval
        self.lease_ms = int(lease * 1000)
        self.batch = batch
        self._claim = redis.register_script(_CLAIM)
        self._done = redis.register_script(_DONE)
        self.alive_at = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                while await self.tick() == self.batch:
                    pass  # a full batch: more may be due right now
                raise_if_cancelling()  # redis-py may swallow a cancellation
                self.alive_at = loop.time()
            except RETRYABLE as exc:
                raise_if_cancelling()
                log.warning("scheduler.redis_unavailable", error=str(exc))
            await asyncio.sleep(self.interval)

    async def tick(self) -> int:
        """Claim and handle the timers due now; returns how many were claimed."""
        now = self.clock()
        now_ms = int(now.timestamp() * 1000)
        raw = await self._claim(keys=[keys.TIMERS], args=[now_ms, self.lease_ms, self.batch])
        pairs = [(text(raw[i]), text(raw[i + 1])) for i in range(0, len(raw), 2)]
        for name, claimed_score in pairs:
            kind, _, contact_id = name.partition(":")
            handler = self.handlers.get(kind)
            if handler is None:
                log.error("scheduler.unknown_timer", timer=name)
                continue
            new_context(timer=kind, contact_id=contact_id)
            try:
                await handler(contact_id, now)
            except Exception:  # the claim's lease brings it back later
                raise_if_cancelling()
                log.exception("scheduler.handler_failed")
                continue
            with contextlib.suppress(*RETRYABLE):
                await self._done(keys=[keys.TIMERS], args=[name, claimed_score])
        return len(pairs)
