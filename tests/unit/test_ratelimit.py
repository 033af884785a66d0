"""GCRA token buckets in Redis. Timing asserts are mostly lower bounds (slow CI machines)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.ratelimit import Bucket, Limiter
from gateway.store import keys
from gateway.store.redis import Redis


@pytest.fixture
def limiter(redis: Redis) -> Limiter:
    return Limiter(redis)


async def tat(redis: Redis, bucket: str) -> bytes:
    """The bucket's stored theoretical arrival time (ms), as Redis holds it."""
    value = await redis.get(keys.rate(bucket))
    assert isinstance(value, bytes)
    return value


async def redis_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_bucket_constructors() -> None:
    assert Bucket.per_second("a", 20) == Bucket("a", 50.0, 1)
    assert Bucket.per_minute("b", 20, burst=3) == Bucket("b", 3000.0, 3)


async def test_burst_one_spaces_acquisitions(limiter: Limiter) -> None:
    bucket = Bucket.per_second("x", 20, burst=1)  # one per 50 ms
    start = time.monotonic()
    waited = [await limiter.acquire([bucket]) for _ in range(10)]
    elapsed = time.monotonic() - start
    assert waited[0] == 0.0
    assert all(w > 0 for w in waited[1:])
    assert elapsed >= 0.44  # 9 intervals of 50 ms (Redis time has 1 ms resolution)
    assert sum(waited) >= 0.44
    assert elapsed < 5  # sanity, generous


async def test_burst_allows_that_many_at_once(limiter: Limiter) -> None:
    bucket = Bucket.per_second("x", 20, burst=5)
    start = time.monotonic()
    for _ in range(5):
        assert await limiter.acquire([bucket]) == 0.0
    assert time.monotonic() - start < 0.5
    assert await limiter.acquire([bucket]) > 0  # the 6th waits


async def test_buckets_are_independent(limiter: Limiter) -> None:
    await limiter.acquire([Bucket.per_second("one", 1)])
    start = time.monotonic()
    assert await limiter.acquire([Bucket.per_second("two", 1)]) == 0.0
    assert time.monotonic() - start < 0.5


async def test_two_buckets_are_taken_together_or_not_at_all(limiter: Limiter, redis: Redis) -> None:
    slow = Bucket.per_second("slow", 2)  # 500 ms interval
    fast = Bucket.per_second("fast", 100)
    await limiter.acquire([slow])  # exhaust `slow`
    slow_tat = await tat(redis, "slow")

    both = asyncio.create_task(limiter.acquire([slow, fast]))
    await asyncio.sleep(0.25)
    assert not both.done()
    # While waiting for `slow`, no token was taken from `fast`, nor another from `slow`.
    assert await redis.get(keys.rate("fast")) is None
    assert await redis.get(keys.rate("slow")) == slow_tat

    waited = await asyncio.wait_for(both, 5)
    assert waited >= 0.2
    assert await redis.get(keys.rate("fast")) is not None
    assert int(await tat(redis, "slow")) > int(slow_tat)


async def test_penalize_delays_the_next_acquire(limiter: Limiter) -> None:
    bucket = Bucket.per_second("chat", 20)
    await limiter.penalize(bucket, 0.3)
    start = time.monotonic()
    waited = await limiter.acquire([bucket])
    assert time.monotonic() - start >= 0.28
    assert waited >= 0.28


async def test_penalize_never_shortens_an_existing_wait(limiter: Limiter, redis: Redis) -> None:
    bucket = Bucket.per_second("chat", 20)
    await limiter.penalize(bucket, 1.0)
    tat = await redis.get(keys.rate("chat"))
    await limiter.penalize(bucket, 0.1)
    assert await redis.get(keys.rate("chat")) == tat
    assert 800 <= await redis.pttl(keys.rate("chat")) <= 2100


async def test_penalize_holds_for_buckets_with_a_burst(limiter: Limiter) -> None:
    # The shape of a private-chat bucket: 1/s with a burst of 3 (adapters/telegram).
    bucket = Bucket.per_second("private", 1, burst=3)
    await limiter.penalize(bucket, 1.0)  # Telegram said: retry after 1 s
    start = time.monotonic()
    await limiter.acquire([bucket])
    assert time.monotonic() - start >= 0.9


async def test_fractional_interval_is_accepted(limiter: Limiter, redis: Redis) -> None:
    # 30/s is the default bot-wide Telegram limit: a 33.33 ms interval.
    bucket = Bucket.per_second("bot", 30)
    start = time.monotonic()
    for _ in range(4):
        await limiter.acquire([bucket])
    assert time.monotonic() - start >= 0.09
    assert (await tat(redis, "bot")).isdigit()  # whole milliseconds


async def test_a_sub_millisecond_wait_is_not_a_free_pass(limiter: Limiter, redis: Redis) -> None:
    # interval 333.33 ms, burst 2: tolerance 333.33 ms. After a 334 ms penalty the bucket
    # is 0.67 ms over its tolerance. Both scripts run back to back in one MULTI (same
    # Redis millisecond, almost always); repeat a few times in case a ms boundary falls
    # between them.
    bucket = Bucket.per_second("chat", 3, burst=2)
    args = ["take", "", 0, *bucket.args()]
    key = keys.rate(bucket.name)
    free_passes = 0
    for _ in range(20):
        await redis.delete(key)
        async with redis.pipeline(transaction=True) as pipe:
            await limiter._penalize(keys=[key], args=[334, "g", bucket.interval_ms, 0], client=pipe)
            pipe.get(key)
            await limiter._take(keys=[key], args=args, client=pipe)
            pipe.get(key)
            _, before, wait, after = await pipe.execute()
        if not wait and after == before:
            free_passes += 1  # "taken" (0) but the TAT did not move
    assert free_passes == 0


async def test_disabled_limiter_never_waits(redis: Redis) -> None:
    limiter = Limiter(redis, enabled=False)
    bucket = Bucket.per_minute("x", 1)
    start = time.monotonic()
    for _ in range(50):
        assert await limiter.acquire([bucket]) == 0.0
    assert time.monotonic() - start < 1.0
    assert await redis.get(keys.rate("x")) is None  # not even counted


async def test_no_buckets_never_waits(limiter: Limiter) -> None:
    assert await limiter.acquire([]) == 0.0


async def test_rate_keys_expire_when_idle(limiter: Limiter, redis: Redis) -> None:
    await limiter.acquire([Bucket.per_second("x", 20)])
    ttl = await redis.pttl(keys.rate("x"))
    assert 0 < ttl <= 1100
    assert int(await tat(redis, "x")) >= await redis_ms(redis)


async def test_a_pool_takes_the_first_option_with_budget(limiter: Limiter) -> None:
    relay = [Bucket.per_minute("relay", 1, burst=2)]
    staff = [Bucket.per_minute("staff", 1, burst=1)]
    # The relay's burst first (preferred), then the staff bot, then nobody for a while.
    assert [(await limiter.acquire_any([relay, staff]))[0] for _ in range(3)] == [0, 0, 1]
    assert await limiter.wait_for_any([relay, staff]) > 50  # about a minute
    # Peeking takes nothing: a fresh option is still free afterwards, twice.
    fresh = [Bucket.per_minute("fresh", 1, burst=1)]
    assert await limiter.wait_for_any([fresh]) == 0.0
    assert await limiter.wait_for_any([fresh]) == 0.0
    assert await limiter.acquire_any([relay, fresh]) == (1, 0.0)


async def test_a_pool_waits_for_whichever_frees_first(limiter: Limiter) -> None:
    slow = [Bucket.per_second("slow", 1)]
    quick = [Bucket.per_second("quick", 10)]
    await limiter.acquire_any([slow])
    await limiter.acquire_any([quick])
    start = time.monotonic()
    index, waited = await limiter.acquire_any([slow, quick])
    assert index == 1 and 0 < waited < 0.5
    assert time.monotonic() - start < 0.5


async def test_a_sliding_window_uses_the_whole_budget_and_no_more(limiter: Limiter) -> None:
    window = Bucket.window("group", 5, 0.4)  # 5 in any 400 ms
    start = time.monotonic()
    assert [await limiter.acquire([window]) for _ in range(5)] == [0.0] * 5  # all at once
    assert time.monotonic() - start < 0.3
    waited = await limiter.acquire([window])  # the 6th: when the 1st leaves the window
    assert waited > 0.2 and time.monotonic() - start >= 0.39
    # The others left with the 1st: four more go at once, the next waits again.
    assert sum([await limiter.acquire([window]) for _ in range(4)]) < 0.05
    assert await limiter.wait_for_any([[window]]) > 0.2


async def test_retry_after_holds_a_sliding_window_for_everyone(limiter: Limiter) -> None:
    window = Bucket.window("group", 20, 60)
    await limiter.penalize(window, 0.3)
    start = time.monotonic()
    assert await limiter.acquire([window]) >= 0.25
    assert time.monotonic() - start >= 0.25
    assert await limiter.acquire([window]) == 0.0  # the pause is over: budget again


async def test_waiters_take_turns_in_order_of_waiting_and_priority(limiter: Limiter) -> None:
    from gateway.ratelimit import Turn

    paced = [Bucket.per_second("group", 20)]  # one per 50 ms
    await limiter.acquire_any([paced])  # the budget is spent: everyone waits
    served: list[str] = []

    async def waiter(name: str, delay: float, priority_ms: float = 0) -> None:
        await asyncio.sleep(delay)
        turn = Turn("turns:test", name, priority_ms)
        for _ in range(2):  # a chatty one asks again right away
            await limiter.acquire_any([paced], turn)
            served.append(name)

    await asyncio.gather(
        waiter("chatty", 0.0),
        waiter("quiet", 0.01),
        waiter("vip", 0.02, priority_ms=60_000),
    )
    # The VIP's priority (a minute) puts it ahead, twice; then the others by arrival, and
    # a second request queues behind everyone who was already waiting.
    assert served == ["vip", "vip", "chatty", "quiet", "chatty", "quiet"]


async def test_a_waiter_that_went_away_loses_its_place(limiter: Limiter, redis: Redis) -> None:
    from gateway.ratelimit import Turn

    queue = keys.rate("turns:gone")
    await redis.zadd(queue, {"ghost": 0})  # waiting since forever, but not alive
    start = time.monotonic()
    assert await limiter.acquire_any([[Bucket.per_second("free", 10)]], Turn("turns:gone", "me"))
    assert time.monotonic() - start < 0.5
    assert await redis.zcard(queue) == 0
