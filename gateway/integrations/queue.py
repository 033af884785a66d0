"""The delivery queues in Redis: one list per target and contact, claimed by workers.

Why not the bus's partitioned streams: a partition keeps the order of *every*
contact hashed to it, so a CRM failing on one contact's event for hours would hold
back a sixteenth of all contacts. Here each (target, contact) pair is its own line:

- ``queue(target, contact)`` holds the deliveries in the order the events happened;
  only its head is ever tried, so order per contact and target holds across retries.
- ``due(target)`` scores each contact by when its head may be tried. A worker claims
  due contacts by pushing their score past the time one attempt can take (the
  target's timeout plus a lease), so two replicas never try one contact at once, and a
  replica that dies leaves its contacts to be claimed again when that time has passed
  (the scheduler's timers work the same way).
- Every write after a claim is a script that first checks the claim's token: a worker
  that stalled past its claim cannot pop, reschedule or dead-letter what another
  worker now holds.

A failing head is rescheduled (the contact's score moves to the next attempt) and the
worker moves on to other contacts; a dead-lettered head is removed, so the contact's
next delivery goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline

from gateway.integrations import keys as hk
from gateway.integrations.payload import Delivery
from gateway.store.redis import Redis, text

# KEYS: due, claims. ARGV: now (ms), claimed until (ms), how many, token. Returns the
# claimed contacts and the earliest score left (a hint of when to look again).
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, contact in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], contact)
  redis.call('HSET', KEYS[2], contact, ARGV[4])
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {due, first[2] or false}
"""
# The contact's head and its attempts so far ({false, false}: the queue is empty).
_PEEK = """
local function peek(queue, tries)
  local head = redis.call('LINDEX', queue, 0)
  if not head then return {false, false} end
  local ok, decoded = pcall(cjson.decode, head)
  if ok and type(decoded) == 'table' and type(decoded['id']) == 'string' then
    return {head, redis.call('HGET', tries, decoded['id'])}
  end
  return {head, false}
end
"""
# KEYS: queue, tries.
_HEAD = _PEEK + "return peek(KEYS[1], KEYS[2])"
# The head was delivered (or is dead: ARGV[6] is the dead letter). KEYS: queue, due,
# claims, tries, backlog, dead items, dead (all), dead (target), dead sequence. ARGV:
# contact, token, head, claimed until (ms), delivery id, dead letter ('' = delivered).
# Returns how many deliveries the contact has left (-1: the claim was lost) and, if
# any, the next head and its attempts: one round trip per delivery.
_POP = (
    _PEEK
    + """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return {-1, false, false} end
if redis.call('LINDEX', KEYS[1], 0) == ARGV[3] then
  redis.call('LPOP', KEYS[1])
  redis.call('DECR', KEYS[5])
  if ARGV[6] ~= '' then
    local seq = redis.call('INCR', KEYS[9])
    redis.call('HSET', KEYS[6], ARGV[5], ARGV[6])
    redis.call('ZADD', KEYS[7], seq, ARGV[5])
    redis.call('ZADD', KEYS[8], seq, ARGV[5])
  end
end
redis.call('HDEL', KEYS[4], ARGV[5])
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  return {0, false, false}
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
local next_ = peek(KEYS[1], KEYS[4])
return {left, next_[1], next_[2]}
"""
)
# The head failed and will be tried again at ARGV[5]. KEYS: due, claims, tries.
# ARGV: contact, token, delivery id, its attempts (JSON), when (ms).
_LATER = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""
# Give a claimed contact back (a worker stops), due at ARGV[3]. KEYS: queue, due, claims.
_RELEASE = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Tries:
    """A delivery's failed attempts so far (none: it was never tried, or succeeded)."""

    attempts: int = 0
    since_ms: int = 0
    """When the first attempt failed: the retry window counts from here."""
    error: str = ""

    def failed(self, now_ms: int, error: str) -> Tries:
        return Tries(self.attempts + 1, self.since_ms or now_ms, error)

    def dump(self) -> str:
        return json.dumps({"attempts": self.attempts, "since": self.since_ms, "error": self.error})

    @classmethod
    def load(cls, raw: bytes | str | None) -> Tries:
        if raw is None:
            return cls()
        data = json.loads(raw)
        return cls(int(data["attempts"]), int(data["since"]), str(data["error"]))


Head = tuple[str, Tries]
"""A contact's next delivery (raw JSON) and its attempts so far."""


def _head(raw: bytes | None, tries: bytes | None) -> Head | None:
    return None if raw is None else (text(raw), Tries.load(tries))


class Queues:
    """The scripts above, bound to one Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._head = redis.register_script(_HEAD)
        self._pop = redis.register_script(_POP)
        self._later = redis.register_script(_LATER)
        self._release = redis.register_script(_RELEASE)

    @staticmethod
    def enqueue(pipe: Pipeline, delivery: Delivery, now_ms: int) -> None:
        """Append inside the caller's transaction (the fan-out acks the event in it).
        ``NX``: a contact already waiting for a retry, or held, keeps its time."""
        pipe.rpush(hk.queue(delivery.target, delivery.contact), delivery.model_dump_json())
        pipe.zadd(hk.due(delivery.target), {delivery.contact: now_ms}, nx=True)
        pipe.incr(hk.backlog(delivery.target))

    async def claim(
        self, target: str, token: str, now_ms: int, until_ms: int, limit: int
    ) -> tuple[list[str], int | None]:
        reply: Any = await self._claim(
            keys=[hk.due(target), hk.claims(target)], args=[now_ms, until_ms, limit, token]
        )
        claimed = [text(c) for c in reply[0]]
        first = int(float(text(reply[1]))) if reply[1] else None
        return claimed, first

    async def head(self, target: str, contact: str) -> Head | None:
        """The contact's next delivery (raw JSON) and its attempts so far."""
        reply: Any = await self._head(keys=[hk.queue(target, contact), hk.tries(target)])
        return _head(reply[0], reply[1])

    async def pop(
        self,
        target: str,
        contact: str,
        token: str,
        head: str,
        delivery_id: str,
        until_ms: int,
        dead: str = "",
    ) -> tuple[int, Head | None]:
        """Remove the delivered (or, with ``dead``, dead-lettered) head; renew the claim
        if more wait. Returns how many are left (-1: the claim was lost) and the next."""
        reply: Any = await self._pop(
            keys=[
                hk.queue(target, contact),
                hk.due(target),
                hk.claims(target),
                hk.tries(target),
                hk.backlog(target),
                hk.DEAD_ITEMS,
                hk.DEAD,
                hk.dead(target),
                hk.DEAD_SEQ,
            ],
            args=[contact, token, head, until_ms, delivery_id, dead],
        )
        return int(reply[0]), _head(reply[1], reply[2])

    async def later(
        self, target: str, contact: str, token: str, delivery_id: str, tries: Tries, at_ms: int
    ) -> bool:
        done: Any = await self._later(
            keys=[hk.due(target), hk.claims(target), hk.tries(target)],
            args=[contact, token, delivery_id, tries.dump(), at_ms],
        )
        return bool(done)

    async def release(self, target: str, contact: str, token: str, at_ms: int) -> None:
        await self._release(
            keys=[hk.queue(target, contact), hk.due(target), hk.claims(target)],
            args=[contact, token, at_ms],
        )

    async def backlog(self, target: str) -> int:
        return int(await self.redis.get(hk.backlog(target)) or 0)
