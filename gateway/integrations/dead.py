"""Dead letters: deliveries a target refused for good, or kept failing past its retry
window. They are kept (in Redis, with the last error) until someone replays or
discards them; nothing expires them.

- :func:`list_dead` pages through them, oldest first, optionally for one target.
- :func:`replay` puts them back at the end of their contact's queue (same delivery
  id and body, attempts reset): after whatever that contact has queued now.
- :func:`discard` deletes them.

Each move is one script that first checks the dead letter is still the one that was
read, so two admins replaying at once deliver it once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.errors import GatewayError
from gateway.integrations import keys as hk
from gateway.integrations.payload import Delivery
from gateway.integrations.queue import Tries
from gateway.integrations.sender import iso
from gateway.store.redis import Redis, text

MAX_PAGE = 1000

# KEYS: dead items, dead (all), dead (target), queue, due, backlog. ARGV: delivery id,
# the dead letter as read, the delivery, contact, now (ms).
_REPLAY = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[5], 'NX', ARGV[5], ARGV[4])
redis.call('INCR', KEYS[6])
return 1
"""
# KEYS: dead items, dead (all), dead (target). ARGV: delivery id.
_DISCARD = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


class DeadLetterError(GatewayError):
    """A request about dead letters that cannot be done as asked (bad cursor or
    limit, an unknown target, neither or both of ids and target)."""


class DeadLetter(BaseModel):
    """One parked delivery, as the API shows it."""

    model_config = ConfigDict(frozen=True)
    id: str
    """The delivery id (``X-Gateway-Delivery``)."""
    target: str
    contact: str
    type: str
    error: str
    """The last attempt's error (``HTTP 400: …``, ``no answer within 10 s``…)."""
    attempts: int
    failing_since: datetime
    dead_at: datetime
    payload: dict[str, Any]
    """The JSON body the target was sent (``docs/integrations.md``)."""


class DeadPage(BaseModel):
    model_config = ConfigDict(frozen=True)
    items: tuple[DeadLetter, ...]
    next_cursor: str | None
    """Pass it back for the next page; ``None``: this was the last one."""


class Moved(BaseModel):
    """What a replay or a discard did: the ids it moved, and those it did not find."""

    model_config = ConfigDict(frozen=True)
    done: tuple[str, ...]
    missing: tuple[str, ...]


def dead_letter(
    raw: str, delivery: Delivery | None, where: tuple[str, str], tries: Tries, now_ms: int
) -> str:
    """The stored form of a dead letter (``tries`` includes the last attempt).
    ``delivery`` is ``raw`` parsed (None: unreadable); ``where`` its target and contact."""
    target, contact = where
    record = {
        "id": delivery.id if delivery else f"{target}:unreadable-{now_ms}",
        "target": target,
        "contact": contact,
        "type": delivery.type if delivery else "",
        "delivery": raw,
        "error": tries.error,
        "attempts": tries.attempts,
        "since": tries.since_ms or now_ms,
        "dead_at": now_ms,
    }
    return json.dumps(record, ensure_ascii=False)


def _load(raw: str) -> DeadLetter:
    record = json.loads(raw)
    try:
        payload = json.loads(Delivery.model_validate_json(record["delivery"]).body())
    except ValidationError:
        payload = {"raw": record["delivery"]}
    return DeadLetter(
        id=record["id"],
        target=record["target"],
        contact=record["contact"],
        type=record["type"],
        error=record["error"],
        attempts=record["attempts"],
        failing_since=iso(record["since"]),
        dead_at=iso(record["dead_at"]),
        payload=payload,
    )


async def list_dead(
    redis: Redis, target: str | None = None, limit: int = 50, cursor: str | None = None
) -> DeadPage:
    """A page of dead letters, oldest first (of one target, or all)."""
    if not 1 <= limit <= MAX_PAGE:
        raise DeadLetterError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    after = _cursor(cursor)
    index = hk.DEAD if target is None else hk.dead(target)
    found: list[Any] = await redis.zrangebyscore(
        index, f"({after}", "+inf", start=0, num=limit, withscores=True
    )
    if not found:
        return DeadPage(items=(), next_cursor=None)
    ids = [text(member) for member, _ in found]
    raws = await redis.hmget(hk.DEAD_ITEMS, ids)
    items = tuple(_load(text(raw)) for raw in raws if raw is not None)
    last = int(found[-1][1])
    return DeadPage(items=items, next_cursor=str(last) if len(found) == limit else None)


async def replay(
    redis: Redis,
    targets: Collection[str],
    ids: Sequence[str] | None = None,
    *,
    target: str | None = None,
) -> Moved:
    """Queue dead letters again: the ``ids`` given, or every one of ``target``'s.

    Only for targets configured now (``targets``): another's would wait for a worker
    that never comes. Nothing is moved if any id names such a target.
    """
    if (ids is None) == (target is None):
        raise DeadLetterError("give either delivery ids or a target, not both or neither")
    if target is not None:
        if target not in targets:
            raise DeadLetterError(f"no webhook target {target!r}")
        return await _replay_all(redis, target)
    assert ids is not None
    unknown = sorted({i.split(":", 1)[0] for i in ids} - set(targets))
    if unknown:
        raise DeadLetterError(f"no webhook target {', '.join(map(repr, unknown))}")
    return await _replay(redis, list(dict.fromkeys(ids)))


async def _replay_all(redis: Redis, target: str) -> Moved:
    done: list[str] = []
    missing: list[str] = []
    cursor: str | None = None
    while True:
        found: list[Any] = await redis.zrangebyscore(
            hk.dead(target), f"({_cursor(cursor)}", "+inf", start=0, num=100, withscores=True
        )
        if not found:
            return Moved(done=tuple(done), missing=tuple(missing))
        moved = await _replay(redis, [text(member) for member, _ in found])
        done += moved.done
        missing += moved.missing
        cursor = str(int(found[-1][1]))


async def _replay(redis: Redis, ids: list[str]) -> Moved:
    script = redis.register_script(_REPLAY)
    done: list[str] = []
    missing: list[str] = []
    raws = await redis.hmget(hk.DEAD_ITEMS, ids) if ids else []
    now_ms = int(time.time() * 1000)
    for delivery_id, raw in zip(ids, raws, strict=True):
        if raw is None:
            missing.append(delivery_id)
            continue
        record = json.loads(raw)
        target, contact = record["target"], record["contact"]
        moved = await script(
            keys=[
                hk.DEAD_ITEMS,
                hk.DEAD,
                hk.dead(target),
                hk.queue(target, contact),
                hk.due(target),
                hk.backlog(target),
            ],
            args=[delivery_id, raw, record["delivery"], contact, now_ms],
        )
        (done if moved else missing).append(delivery_id)
    return Moved(done=tuple(done), missing=tuple(missing))


async def discard(redis: Redis, ids: Sequence[str]) -> Moved:
    """Delete dead letters for good."""
    script = redis.register_script(_DISCARD)
    done: list[str] = []
    missing: list[str] = []
    for delivery_id in dict.fromkeys(ids):
        target = delivery_id.split(":", 1)[0]
        removed = await script(keys=[hk.DEAD_ITEMS, hk.DEAD, hk.dead(target)], args=[delivery_id])
        (done if removed else missing).append(delivery_id)
    return Moved(done=tuple(done), missing=tuple(missing))


async def count(redis: Redis, target: str) -> int:
    return int(await redis.zcard(hk.dead(target)))


def _cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise DeadLetterError(f"not a cursor from a previous page: {cursor[:40]!r}")
    return int(cursor)
