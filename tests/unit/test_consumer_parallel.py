"""A consumer handling several routing keys of one partition at once (``parallel``),
against a real redis-server: each key's order, no head-of-line blocking, failures and
stops."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.bus import Bus, Entry
from gateway.consumer import Consumer
from gateway.store import keys
from gateway.store.redis import Redis

from .conftest import Runner, wait_until
from .test_bus import handled, handled_count, recording_handler

FAMILY = keys.STAFF_OUT
LEASE = 0.5


@pytest.fixture
def bus(redis: Redis) -> Bus:
    return Bus(redis, partitions=1, dedup_ttl_seconds=60)


async def publish(bus: Bus, chats: list[str], per_chat: int, start: int = 0) -> None:
    """``per_chat`` entries of every chat, interleaved (``chat|i`` payloads)."""
    for i in range(start, start + per_chat):
        for chat in chats:
            await bus.publish_once(FAMILY, chat, f"{chat}:{i}", f"{chat}|{i}")


def orders(payloads: list[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for payload in payloads:
        chat, i = payload.split("|")
        found.setdefault(chat, []).append(int(i))
    return found


class Gauged:
    """A handler that sleeps ``pause`` s (longer while ``hold`` says so), then records
    the entry and acks it; counts how many entries it had at once."""

    def __init__(
        self, redis: Redis, pause: float, hold: Callable[[Entry], Awaitable[None]] | None = None
    ) -> None:
        self.record = recording_handler(redis)
        self.pause = pause
        self.hold = hold
        self.now = 0
        self.most = 0

    async def __call__(self, entry: Entry) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            if self.hold is not None:
                await self.hold(entry)
            await asyncio.sleep(self.pause)
            await self.record(entry)
        finally:
            self.now -= 1


async def test_a_stuck_chat_does_not_hold_up_its_partition(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    chats = [f"chat{c}" for c in range(5)]
    await publish(bus, chats, 10)
    release = asyncio.Event()

    async def hold(entry: Entry) -> None:
        if entry.payload.startswith(b"chat0|"):
            await release.wait()  # a chat held by its rate limit

    handle = Gauged(redis, 0.001, hold)
    runner.start(Consumer(bus, FAMILY, handle, name="a", lease_seconds=LEASE, parallel=8))
    # One partition, and the other four chats are all handled while chat0 waits.
    await wait_until(handled_count(redis, 40), timeout=10)
    assert not any(p.startswith("chat0|") for p in await handled(redis))
    await publish(bus, chats, 10, start=10)  # more arrive meanwhile: read after the batch
    release.set()
    await wait_until(handled_count(redis, 100), timeout=10)

    seen = await handled(redis)
    assert Counter(seen).most_common(1)[0][1] == 1  # nothing twice
    assert orders(seen) == {chat: list(range(20)) for chat in chats}
    assert handle.most > 1
    assert await bus.depth(FAMILY) == 0


async def test_at_most_parallel_chats_at_once(bus: Bus, redis: Redis, runner: Runner) -> None:
    chats = [f"chat{c}" for c in range(12)]
    await publish(bus, chats, 3)
    handle = Gauged(redis, 0.01)
    runner.start(Consumer(bus, FAMILY, handle, name="a", lease_seconds=LEASE, parallel=3))
    await wait_until(handled_count(redis, 36), timeout=10)
    assert handle.most == 3
    assert orders(await handled(redis)) == {chat: [0, 1, 2] for chat in chats}


async def test_entries_without_a_key_go_one_at_a_time_in_order(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    # Entries as published before the routing key was stored with them: their keys
    # are unknown, so nothing may overtake them.
    stream = bus.stream(FAMILY, "any")
    await bus.ensure_group(stream)
    for i in range(20):
        await redis.xadd(stream, {"e": f"chat{i % 4}|{i}"})
    handle = Gauged(redis, 0.002)
    runner.start(Consumer(bus, FAMILY, handle, name="a", lease_seconds=LEASE, parallel=8))
    await wait_until(handled_count(redis, 20), timeout=10)
    assert [int(p.split("|")[1]) for p in await handled(redis)] == list(range(20))
    assert handle.most == 1


async def test_a_failing_chat_lets_the_sends_in_flight_finish_then_starts_over(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    """Redis fails for one chat while another chat's send is in flight: that send is not
    cancelled (it would be repeated), no new entry starts, and the partition starts
    over from its pending entries — each handled once, in order."""
    await publish(bus, ["a", "b"], 3)
    record = recording_handler(redis)
    b_entered = asyncio.Event()
    a_failed = asyncio.Event()
    attempts: Counter[str] = Counter()
    started: list[tuple[str, int]] = []
    cancelled: list[str] = []

    async def handle(entry: Entry) -> None:
        payload = entry.payload.decode()
        attempts[payload] += 1
        started.append((payload, attempts[payload]))
        try:
            if payload == "b|0":
                b_entered.set()
                await a_failed.wait()  # the platform answers well after a's failure
                await asyncio.sleep(0.3)
            if payload == "a|0" and attempts[payload] == 1:
                await b_entered.wait()
                a_failed.set()
                started.append(("failed", 0))
                raise RedisConnectionError("Redis went away")
            await record(entry)
        except asyncio.CancelledError:
            cancelled.append(payload)
            raise

    runner.start(Consumer(bus, FAMILY, handle, name="c", lease_seconds=LEASE, parallel=4))
    await wait_until(handled_count(redis, 6), timeout=10)
    seen = await handled(redis)
    assert orders(seen) == {"a": [0, 1, 2], "b": [0, 1, 2]}
    assert cancelled == []
    assert attempts["b|0"] == 1  # finished once, not redone
    assert attempts["a|0"] == 2
    # Nothing started between the failure and the partition starting over.
    failure, retry = started.index(("failed", 0)), started.index(("a|0", 2))
    assert started[failure + 1 : retry] == [], started
    assert await bus.depth(FAMILY) == 0


async def test_a_stop_lets_every_chat_in_flight_finish_and_starts_no_more(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    await publish(bus, ["a", "b", "c"], 3)
    record = recording_handler(redis)
    entered: Counter[str] = Counter()
    go = asyncio.Event()

    async def slow(entry: Entry) -> None:
        entered[entry.payload.decode()] += 1
        await go.wait()
        await asyncio.sleep(0.01)
        await record(entry)

    consumer = Consumer(bus, FAMILY, slow, name="s", lease_seconds=LEASE, parallel=4)
    task = runner.start(consumer)
    await wait_until(lambda: len(entered) == 3, timeout=10)  # a|0, b|0, c|0 in flight
    task.cancel()
    await asyncio.sleep(0.05)
    go.set()  # within the stop's grace: the three finish
    await runner.stop(task)

    assert sorted(await handled(redis)) == ["a|0", "b|0", "c|0"]
    assert set(entered) == {"a|0", "b|0", "c|0"}  # nothing started after the stop
    assert await bus.depth(FAMILY) == 6

    again = Consumer(bus, FAMILY, recording_handler(redis), name="t", lease_seconds=LEASE)
    runner.start(again)
    await wait_until(handled_count(redis, 9), timeout=10)
    assert orders(await handled(redis)) == {c: [0, 1, 2] for c in "abc"}


async def test_published_entries_carry_their_routing_key(bus: Bus, redis: Redis) -> None:
    await bus.publish_once(FAMILY, "chat7", "ev1", "payload")
    async with redis.pipeline(transaction=True) as pipe:
        bus.add(pipe, FAMILY, "chat7", "job")
        await pipe.execute()
    entries = await redis.xrange(bus.stream(FAMILY, "chat7"))
    assert [fields for _, fields in entries] == [
        {b"e": b"payload", b"k": b"chat7"},
        {b"e": b"job", b"k": b"chat7"},
    ]
