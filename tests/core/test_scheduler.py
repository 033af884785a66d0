"""Timers: fire once across replicas, survive a crashed handler, catch up without a storm."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from gateway.scheduler import Scheduler, member
from gateway.store import keys
from gateway.store.redis import close, connect

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def test_two_replicas_fire_each_timer_once(redis_url: str) -> None:
    clients = [connect(redis_url), connect(redis_url)]
    fired: Counter[str] = Counter()

    async def handler(contact_id: str, _: datetime) -> None:
        fired[contact_id] += 1
        await asyncio.sleep(0)

    replicas = [Scheduler(c, {"ping": handler}, clock=lambda: NOW, batch=7) for c in clients]
    try:
        await clients[0].zadd(
            keys.TIMERS, {member("ping", str(i)): _ms(NOW) - i for i in range(60)}
        )
        await clients[0].zadd(keys.TIMERS, {member("ping", "later"): _ms(NOW + timedelta(hours=1))})
        for _ in range(12):
            await asyncio.gather(*(r.tick() for r in replicas))
        assert fired == Counter({str(i): 1 for i in range(60)})
        assert await clients[0].zrange(keys.TIMERS, 0, -1) == [b"ping:later"]
    finally:
        for c in clients:
            await close(c)


async def test_a_failed_handler_fires_again_after_the_lease(redis_url: str) -> None:
    redis = connect(redis_url)
    clock = [NOW]
    calls: list[str] = []

    async def flaky(contact_id: str, _: datetime) -> None:
        calls.append(contact_id)
        if len(calls) == 1:
            raise RuntimeError("worker crashed mid-timer")

    scheduler = Scheduler(redis, {"ping": flaky}, clock=lambda: clock[0], lease=30)
    try:
        await redis.zadd(keys.TIMERS, {member("ping", "7"): _ms(NOW)})
        assert await scheduler.tick() == 1
        assert await scheduler.tick() == 0  # claimed: not again within the lease
        clock[0] = NOW + timedelta(seconds=31)
        assert await scheduler.tick() == 1
        assert calls == ["7", "7"]
        assert await redis.zcard(keys.TIMERS) == 0
    finally:
        await close(redis)


async def test_rearmed_timer_is_not_removed_by_the_old_claim(redis_url: str) -> None:
    redis = connect(redis_url)

    async def rearm(contact_id: str, _: datetime) -> None:
        # The state changed while handling: a new deadline was set.
        await redis.zadd(keys.TIMERS, {member("ping", contact_id): _ms(NOW + timedelta(hours=1))})

    try:
        await redis.zadd(keys.TIMERS, {member("ping", "1"): _ms(NOW)})
        await Scheduler(redis, {"ping": rearm}, clock=lambda: NOW).tick()
        assert await redis.zscore(keys.TIMERS, "ping:1") == _ms(NOW + timedelta(hours=1))
    finally:
        await close(redis)


async def test_after_downtime_each_timer_fires_once(redis_url: str) -> None:
    """Timers written by one process fire in another after a long pause: one each."""
    writer = connect(redis_url)
    await writer.zadd(keys.TIMERS, {member("ping", c): _ms(NOW - timedelta(days=2)) for c in "abc"})
    await close(writer)
    fired: list[str] = []

    async def handler(contact_id: str, _: datetime) -> None:
        fired.append(contact_id)

    reader = connect(redis_url)
    try:
        scheduler = Scheduler(reader, {"ping": handler}, clock=lambda: NOW)
        await scheduler.tick()
        await scheduler.tick()
        assert sorted(fired) == ["a", "b", "c"]
    finally:
        await close(reader)
