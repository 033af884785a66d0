"""Token buckets shared by every replica, kept in Redis (GCRA, or a sliding window).

A GCRA bucket allows one event per ``interval`` with a burst of ``burst`` events; a
sliding-window bucket allows ``limit`` events in any ``window`` (Telegram's "20 messages
a minute in a group", used to the last message). The script
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
from gateway.store.batch import batched
from gateway.store.redis import Redis

# Two kinds of bucket, three ARGV per key (after the first three ARGV): kind, then
# - 'g' GCRA (the generic cell rate algorithm), interval and tolerance: per bucket a
#   "theoretical arrival time" (TAT); allowed when TAT - now <= tolerance; then
#   TAT = max(TAT, now) + interval.
# - 'w' sliding window, window (ms) and limit: a sorted set of the sends of the last
#   window; allowed while it holds fewer than limit.
# ARGV[1] 'take' or 'peek' (the wait only, taking nothing). ARGV[2] a turn ('' = none):
# then the last KEY is a queue of waiters (member = the turn, score = since when it
# waits, minus ARGV[3] ms of priority) and only its head may take; a waiter that stopped
# asking (its alive key, refreshed on every call, expired) loses its place.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local turn = ARGV[2]
local nbuckets = #KEYS
local mine = true
if turn ~= '' and ARGV[1] == 'take' then
  local queue = KEYS[#KEYS]
  nbuckets = nbuckets - 1
  redis.call('ZADD', queue, 'NX', now - tonumber(ARGV[3]), turn)
  redis.call('SET', queue .. ':alive:' .. turn, 1, 'PX', ALIVE_MS)
  redis.call('PEXPIRE', queue, ALIVE_MS * 20)
  while true do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if head == turn then break end
    if redis.call('EXISTS', queue .. ':alive:' .. head) == 1 then
      mine = false
      break
    end
    redis.call('ZREM', queue, head)
  end
end
local wait = 0
local tats = {}
for i = 1, nbuckets do
  local key = KEYS[i]
  local kind, a, b = ARGV[3 * i + 1], tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3])
  if kind == 'w' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - a)
    local n = redis.call('ZCARD', key)
    if n >= b then
      -- wait until enough of the oldest sends leave the window
      local leaving = redis.call('ZRANGE', key, n - b, n - b, 'WITHSCORES')
      local over = tonumber(leaving[2]) + a - now
      if over > wait then wait = over end
    end
  else
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then tat = now end
    local over = tat - now - b
    if over > wait then wait = over end
    -- whole milliseconds: SET PX takes integers, and Lua prints big floats in e-notation
    tats[i] = math.ceil(tat + a)
  end
end
-- ceil: Redis truncates a Lua number reply, and 0.4 ms of wait must not read as "go"
if not mine then return math.max(1, math.ceil(wait)) end
if wait > 0 then return math.ceil(wait) end
if ARGV[1] == 'peek' then return 0 end
for i = 1, nbuckets do
  local key = KEYS[i]
  if ARGV[3 * i + 1] == 'w' then
    local window = tonumber(ARGV[3 * i + 2])
    redis.call('ZADD', key, now, now .. '-' .. redis.call('ZCARD', key))
    redis.call('PEXPIRE', key, window + 1000)
  else
    redis.call('SET', key, tats[i], 'PX', tats[i] - now + 1000)
  end
end
if turn ~= '' then
  redis.call('ZREM', KEYS[#KEYS], turn)
  redis.call('DEL', KEYS[#KEYS] .. ':alive:' .. turn)
end
return 0
""".replace("ALIVE_MS", "3000")
TURN_POLL = 1.0
"""A waiter in a turn queue asks again at least this often (its place is kept alive)."""
# ARGV: the pause (ms), the bucket's kind, then its two numbers (see _TAKE).
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pause = math.ceil(tonumber(ARGV[1]))
if ARGV[2] == 'w' then
  -- Fill the window with sends that leave it when the pause is over.
  local window, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
  local at = now + pause - window
  for i = 1, limit do redis.call('ZADD', KEYS[1], at, 'hold-' .. i) end
  redis.call('PEXPIRE', KEYS[1], pause + 1000)
  return 0
end
-- The bucket's tolerance is added: a bucket with a burst would otherwise let that
-- burst through right away, before the platform's retry_after is over.
local until_ = now + pause + math.ceil(tonumber(ARGV[4]))
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < until_ then redis.call('SET', KEYS[1], until_, 'PX', until_ - now + 1000) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    interval_ms: float
    """GCRA: one event per this; a sliding window: the window's length."""
    burst: int = 1
    """GCRA: events allowed at once; a sliding window: events allowed in it."""
    sliding: bool = False

    @classmethod
    def per_second(cls, name: str, rate: float, burst: int = 1) -> Bucket:
        return cls(name, 1000.0 / rate, burst)

    @classmethod
    def per_minute(cls, name: str, rate: float, burst: int = 1) -> Bucket:
        return cls(name, 60000.0 / rate, burst)

    @classmethod
    def window(cls, name: str, limit: int, seconds: float) -> Bucket:
        """At most ``limit`` events in any ``seconds``: the whole budget, used as soon
        as it is there (a platform that counts "N a minute" in a sliding window)."""
        return cls(name, seconds * 1000.0, limit, sliding=True)

    def args(self) -> list[float | str]:
        """The bucket's ARGV triple for the scripts."""
        if self.sliding:
            return ["w", self.interval_ms, self.burst]
        return ["g", self.interval_ms, self.interval_ms * (self.burst - 1)]


@dataclass(frozen=True, slots=True)
class Turn:
    """A place in a queue of waiters for one destination (see :meth:`Limiter.acquire_any`)."""

    queue: str
    member: str
    priority_ms: float = 0
    """Served as if it had started waiting this much earlier."""


class Limiter:
    def __init__(self, redis: Redis, *, enabled: bool = True) -> None:
        self.redis = redis
        self.enabled = enabled
        self._take = redis.register_script(_TAKE)
        self._penalize = redis.register_script(_PENALIZE)

    async def acquire(self, buckets: Sequence[Bucket]) -> float:
        """Wait until every bucket has a token, take them; returns seconds waited."""
        waited = 0.0
        while wait := await self.try_take(buckets):
            await asyncio.sleep(wait)
            waited += wait
        return waited

    async def try_take(self, buckets: Sequence[Bucket]) -> float:
        """Take a token of every bucket if all have one (``0``); else take nothing and
        return the seconds until they would (refuse the request, do not wait)."""
        if not self.enabled or not buckets:
            return 0.0
        wait_ms = await batched(
            self._take, keys=_names(buckets), args=["take", "", 0, *_args(buckets)]
        )
        return float(wait_ms) / 1000 if wait_ms else 0.0

    async def acquire_any(
        self, options: Sequence[Sequence[Bucket]], turn: Turn | None = None
    ) -> tuple[int, float]:
        """Wait until the buckets of one of ``options`` all have a token and take them
        (the first such option, in order: put the preferred one first). Returns its
        index and the seconds waited.

        With a ``turn``, waiters of its queue are served in order of when they started
        waiting (less their priority): a destination's budget goes round its waiters
        instead of to whoever asks first after each wait."""
        if not self.enabled:
            return 0, 0.0
        head: list[float | str] = ["take", "", 0]
        extra: list[str] = []
        if turn is not None:
            head = ["take", turn.member, int(turn.priority_ms)]
            extra = [keys.rate(turn.queue)]
        waited = 0.0
        while True:
            shortest = math.inf
            for index, buckets in enumerate(options):
                if not buckets and turn is None:
                    return index, waited
                wait_ms = await batched(
                    self._take, keys=[*_names(buckets), *extra], args=[*head, *_args(buckets)]
                )
                if not wait_ms:
                    return index, waited
                shortest = min(shortest, float(wait_ms))
            pause = shortest / 1000 if turn is None else min(shortest / 1000, TURN_POLL)
            await asyncio.sleep(pause)
            waited += pause

    async def wait_for_any(self, options: Sequence[Sequence[Bucket]]) -> float:
        """Seconds until one of ``options`` could send (0: now), taking nothing."""
        if not self.enabled:
            return 0.0
        shortest = math.inf
        for buckets in options:
            if not buckets:
                return 0.0
            wait_ms = await batched(
                self._take, keys=_names(buckets), args=["peek", "", 0, *_args(buckets)]
            )
            shortest = min(shortest, float(wait_ms))
        return 0.0 if shortest == math.inf else shortest / 1000

    async def penalize(self, bucket: Bucket, seconds: float) -> None:
        """The platform said "retry after": nobody sends through ``bucket`` before then."""
        await batched(
            self._penalize,
            keys=[keys.rate(bucket.name)],
            args=[int(seconds * 1000), *bucket.args()],
        )


def _names(buckets: Sequence[Bucket]) -> list[str]:
    return [keys.rate(b.name) for b in buckets]


def _args(buckets: Sequence[Bucket]) -> list[float | str]:
    return [arg for bucket in buckets for arg in bucket.args()]
