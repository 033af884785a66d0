"""Token buckets shared by every replica, kept in Redis (GCRA).

A bucket allows one event per ``interval`` with a burst of ``burst`` events. The script
takes a token from every bucket of a send at once or from none, and uses Redis' clock,
so replicas on machines with skewed clocks still share one budget. A platform's
``retry_after`` pushes a bucket into the future for everyone (:meth:`Limiter.penalize`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.store import keys
from gateway.store.redis import Redis

# GCRA (the generic cell rate algorithm): per bucket a "theoretical arrival time" (TAT).
# Allowed when TAT - now <= tolerance; then TAT = max(TAT, now) + interval.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local over = tat - now - tolerance
  if over > wait then wait = over end
  -- whole milliseconds: SET PX takes integers, and Lua prints big floats in e-notation
  tats[i] = math.ceil(tat + interval)
end
-- ceil: Redis truncates a Lua number reply, and 0.4 ms of wait must not read as "go"
if wait > 0 then return math.ceil(wait) end
if ARGV[#ARGV] == 'peek' then return 0 end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tats[i], 'PX', tats[i] - now + 1000)
end
return 0
"""
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The bucket's tolerance is added: a bucket with a burst would otherwise let that
-- burst through right away, before the platform's retry_after is over.
local until_ = now + math.ceil(tonumber(ARGV[1])) + math.ceil(tonumber(ARGV[2]))
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < until_ then redis.call('SET', KEYS[1], until_, 'PX', until_ - now + 1000) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    interval_ms: float
    burst: int = 1

    @classmethod
    def per_second(cls, name: str, rate: float, burst: int = 1) -> Bucket:
        return cls(name, 1000.0 / rate, burst)

    @classmethod
    def per_minute(cls, name: str, rate: float, burst: int = 1) -> Bucket:
        return cls(name, 60000.0 / rate, burst)


class Limiter:
    def __init__(self, redis: Redis, *, enabled: bool = True) -> None:
        self.redis = redis
        self.enabled = enabled
        self._take = redis.register_script(_TAKE)
        self._penalize = redis.register_script(_PENALIZE)

    async def acquire(self, buckets: Sequence[Bucket]) -> float:
        """Wait until every bucket has a token, take them; returns seconds waited."""
        if not self.enabled or not buckets:
            return 0.0
        waited = 0.0
        names, args = _names(buckets), _args(buckets)
        while True:
            wait_ms = await self._take(keys=names, args=args)
            if not wait_ms:
                return waited
            await asyncio.sleep(float(wait_ms) / 1000)
            waited += float(wait_ms) / 1000

    async def acquire_any(self, options: Sequence[Sequence[Bucket]]) -> tuple[int, float]:
        """Wait until the buckets of one of ``options`` all have a token and take them
        (the first such option, in order: put the preferred one first). Returns its
        index and the seconds waited."""
        if not self.enabled:
            return 0, 0.0
        waited = 0.0
        while True:
            shortest = math.inf
            for index, buckets in enumerate(options):
                if not buckets:
                    return index, waited
                wait_ms = await self._take(keys=_names(buckets), args=_args(buckets))
                if not wait_ms:
                    return index, waited
                shortest = min(shortest, float(wait_ms))
            await asyncio.sleep(shortest / 1000)
            waited += shortest / 1000

    async def wait_for_any(self, options: Sequence[Sequence[Bucket]]) -> float:
        """Seconds until one of ``options`` could send (0: now), taking nothing."""
        if not self.enabled:
            return 0.0
        shortest = math.inf
        for buckets in options:
            if not buckets:
                return 0.0
            wait_ms = await self._take(keys=_names(buckets), args=[*_args(buckets), "peek"])
            shortest = min(shortest, float(wait_ms))
        return 0.0 if shortest == math.inf else shortest / 1000

    async def penalize(self, bucket: Bucket, seconds: float) -> None:
        """The platform said "retry after": nobody sends through ``bucket`` before then."""
        tolerance = bucket.interval_ms * (bucket.burst - 1)
        await self._penalize(keys=[keys.rate(bucket.name)], args=[int(seconds * 1000), tolerance])


def _names(buckets: Sequence[Bucket]) -> list[str]:
    return [keys.rate(b.name) for b in buckets]


def _args(buckets: Sequence[Bucket]) -> list[float | str]:
    args: list[float | str] = []
    for b in buckets:
        args += [b.interval_ms, b.interval_ms * (b.burst - 1)]
    return args
