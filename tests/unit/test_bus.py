"""The partitioned Redis Streams bus, against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio.connection as redis_connection
from hypothesis import given
from hypothesis import strategies as st

from gateway.bus import Bus, Entry, Handler
from gateway.consumer import Consumer
from gateway.errors import TransientError
from gateway.store import keys
from gateway.store.redis import Redis

from .conftest import RedisTimers, Runner, force_stop, wait_until

FAMILY = keys.INBOUND
LEASE = 0.5


@pytest.fixture
def bus(redis: Redis) -> Bus:
    return Bus(redis, partitions=8, dedup_ttl_seconds=60)


def recording_handler(redis: Redis, into: str = "handled") -> Handler:
    """Stores the payload in a list and acks in the same transaction (the contract)."""

    async def handle(entry: Entry) -> None:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.rpush(into, entry.payload)
            Bus.ack(pipe, entry)
            await pipe.execute()

    return handle


async def handled(redis: Redis, into: str = "handled") -> list[str]:
    values: list[bytes] = await redis.lrange(into, 0, -1)  # type: ignore[assignment]
    return [v.decode() for v in values]


def handled_count(redis: Redis, n: int, into: str = "handled") -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return int(await redis.llen(into)) >= n

    return check


# Publishing ---------------------------------------------------------------------------


async def test_publish_once_appends_once_per_event_key(bus: Bus, redis: Redis) -> None:
    assert await bus.publish_once(FAMILY, "contact:1", "tg:1:5:10", "first") is True
    assert await bus.publish_once(FAMILY, "contact:1", "tg:1:5:10", "again") is False
    # Same event key from another routing key is still a duplicate.
    assert await bus.publish_once(FAMILY, "contact:2", "tg:1:5:10", "other") is False
    assert await bus.publish_once(FAMILY, "contact:1", "tg:1:5:11", "second") is True

    stream = bus.stream(FAMILY, "contact:1")
    entries: Any = await redis.xrange(stream)
    assert [fields[b"e"] for _, fields in entries] == [b"first", b"second"]
    assert await redis.xlen(bus.stream(FAMILY, "contact:2")) in (0, 2)  # same or other partition
    assert await bus.depth(FAMILY) == 2
    # The dedup marker expires (dedup_ttl_seconds), it is not kept forever.
    ttl = await redis.ttl(keys.seen("tg:1:5:10"))
    assert 0 < ttl <= 60


async def test_concurrent_duplicates_publish_exactly_once(bus: Bus) -> None:
    results = await asyncio.gather(
        *(bus.publish_once(FAMILY, "c", "same-event", f"p{i}") for i in range(20))
    )
    assert results.count(True) == 1
    assert await bus.depth(FAMILY) == 1


def test_partition_is_stable_and_known() -> None:
    # crc32 is the same in every process (``hash()`` would be salted per process).
    bus = Bus.__new__(Bus)
    bus.partitions = 8
    assert bus.partition("contact:42") == 1
    assert bus.partition("tg:1:555") == 6
    assert bus.partition("") == 0


@given(key=st.text(), partitions=st.integers(min_value=1, max_value=1024))
def test_partition_in_range_and_deterministic(key: str, partitions: int) -> None:
    a = Bus.__new__(Bus)
    a.partitions = partitions
    b = Bus.__new__(Bus)
    b.partitions = partitions
    p = a.partition(key)
    assert 0 <= p < partitions
    assert b.partition(key) == p
    assert a.stream(FAMILY, key) == keys.stream(FAMILY, p)


# Leases and balance -------------------------------------------------------------------


async def test_two_consumers_share_two_partitions(redis: Redis, runner: Runner) -> None:
    bus = Bus(redis, partitions=2, dedup_ttl_seconds=60)
    noop = recording_handler(redis)
    a = Consumer(bus, FAMILY, noop, name="a", lease_seconds=1.0)
    b = Consumer(bus, FAMILY, noop, name="b", lease_seconds=1.0)
    runner.start(a)
    await wait_until(lambda: a.owned == [0, 1])
    assert a.alive_at > 0

    runner.start(b)
    await wait_until(lambda: len(a.owned) == 1 and len(b.owned) == 1, timeout=10)
    assert sorted(a.owned + b.owned) == [0, 1]
    for p, owner in ((a.owned[0], b"a"), (b.owned[0], b"b")):
        assert await redis.get(keys.lease(f"{FAMILY}:{p}")) == owner
    # Entries of both partitions are handled, whoever owns them.
    for i in range(6):
        await bus.publish_once(FAMILY, f"contact:{i}", f"e{i}", f"p{i}")
    await wait_until(handled_count(redis, 6))
    assert sorted(await handled(redis)) == [f"p{i}" for i in range(6)]


async def test_two_consumers_balance_eight_partitions(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    noop = recording_handler(redis)
    a = Consumer(bus, FAMILY, noop, name="a", lease_seconds=LEASE)
    b = Consumer(bus, FAMILY, noop, name="b", lease_seconds=LEASE)
    runner.start(a)
    await wait_until(lambda: len(a.owned) == 8)

    runner.start(b)
    overlaps: list[set[int]] = []

    def balanced() -> bool:
        common = set(a.owned) & set(b.owned)
        if common:
            overlaps.append(common)  # both serve the same partition: order is lost
        return len(a.owned) == 4 and len(b.owned) == 4

    try:
        await wait_until(balanced, timeout=3)
        # It stays balanced over a few more lease rounds.
        for _ in range(20):
            await asyncio.sleep(LEASE / 10)
            assert balanced()
    finally:
        assert not overlaps, f"partitions owned by both consumers at once: {overlaps[:3]}"
    assert sorted(a.owned + b.owned) == list(range(8))
    for p in range(8):
        owner = await redis.get(keys.lease(f"{FAMILY}:{p}"))
        assert owner == (b"a" if p in a.owned else b"b")


async def test_stopping_a_consumer_releases_its_leases(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    a = Consumer(bus, FAMILY, recording_handler(redis), name="a", lease_seconds=LEASE)
    task = runner.start(a)
    await wait_until(lambda: len(a.owned) == 8)
    await runner.stop(task)
    assert a.owned == []
    for p in range(8):
        assert await redis.get(keys.lease(f"{FAMILY}:{p}")) is None
    assert await redis.zscore(keys.members(FAMILY), "a") is None


# Order, failures, crash recovery ----------------------------------------------------------


async def test_stream_reads_set_no_timer_per_send_or_reply(
    bus: Bus,
    redis: Redis,
    runner: Runner,
    monkeypatch: pytest.MonkeyPatch,
    redis_timers: RedisTimers,
) -> None:
    # Each read is bounded by one deadline (the block, then the reply's time) instead.
    command = redis_timers.label  # the command whose timers they are
    sent: Counter[str] = Counter()
    execute = redis.execute_command

    async def named(*args: Any, **options: Any) -> Any:
        token = command.set(str(args[0]))
        sent[command.get()] += 1
        try:
            return await execute(*args, **options)
        finally:
            command.reset(token)

    def as_connecting(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def connecting(*args: Any, **kwargs: Any) -> Any:
            token = command.set("(dis)connect")  # a new or dropped connection's own timer
            try:
                return await method(*args, **kwargs)
            finally:
                command.reset(token)

        return connecting

    connection = redis_connection.AbstractConnection
    for name in ("connect_check_health", "disconnect"):
        monkeypatch.setattr(connection, name, as_connecting(getattr(connection, name)))
    monkeypatch.setattr(redis, "execute_command", named)
    runner.start(Consumer(bus, FAMILY, recording_handler(redis), name="a", lease_seconds=LEASE))
    for i in range(20):
        await bus.publish_once(FAMILY, f"contact:{i}", f"k:{i}", f"p{i}")
        await asyncio.sleep(0.01)
    await wait_until(handled_count(redis, 20))
    timed = Counter(label for label, _ in redis_timers.set)
    assert sent["XREADGROUP"] >= 5 and timed["XREADGROUP"] == 0
    assert timed["SET"] > 0  # a command of its own (the lease) keeps redis-py's timeouts


async def test_entries_of_one_partition_are_handled_in_publish_order(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    contacts = [f"contact:{c}" for c in range(5)]
    # Some entries exist before the consumer starts, some arrive while it runs.
    for i in range(10):
        for c in contacts:
            await bus.publish_once(FAMILY, c, f"{c}:{i}", f"{c}|{i}")

    seen: list[str] = []

    async def handle(entry: Entry) -> None:
        await asyncio.sleep(0.001)  # give other partitions a chance to interleave
        async with redis.pipeline(transaction=True) as pipe:
            Bus.ack(pipe, entry)
            await pipe.execute()
        seen.append(entry.payload.decode())

    runner.start(Consumer(bus, FAMILY, handle, name="a", lease_seconds=LEASE))
    for i in range(10, 20):
        for c in contacts:
            await bus.publish_once(FAMILY, c, f"{c}:{i}", f"{c}|{i}")
    await wait_until(lambda: len(seen) == 100)

    for c in contacts:
        order = [int(p.split("|")[1]) for p in seen if p.split("|")[0] == c]
        assert order == list(range(20)), c
    assert Counter(seen).most_common(1)[0][1] == 1  # nothing handled twice
    assert await bus.depth(FAMILY) == 0


async def test_crashed_consumer_pending_entries_are_reclaimed(
    redis: Redis, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = Bus(redis, partitions=2, dedup_ttl_seconds=60)
    for i in range(5):
        await bus.publish_once(FAMILY, "contact:1", f"ev{i}", f"m{i}")
    partition = bus.partition("contact:1")
    stream = keys.stream(FAMILY, partition)
    lease_key = keys.lease(f"{FAMILY}:{partition}")

    entered = asyncio.Event()

    async def stuck(entry: Entry) -> None:
        entered.set()
        await asyncio.Event().wait()  # never returns: the process "dies" mid-handler

    a = Consumer(bus, FAMILY, stuck, name="a", lease_seconds=LEASE)
    a_run = runner.start(a)
    await asyncio.wait_for(entered.wait(), 5)

    # Crash: leases are not released, the member entry is not removed, the partition
    # tasks just stop (stopping is set too, so that they end even if a cancellation is
    # swallowed inside redis-py on Python 3.11).
    async def no_release() -> None:
        return None

    monkeypatch.setattr(a, "_release_all", no_release)
    owned = list(a._owned.values())
    await runner.stop(a_run)
    assert await redis.get(lease_key) == b"a"  # still held: nobody released it
    for o in owned:
        o.stopping.set()
        o.task.cancel()
    await asyncio.wait([o.task for o in owned], timeout=5)
    assert all(o.task.done() for o in owned)

    pending = await redis.xpending(stream, keys.GROUP)
    # The batch that was claimed (all five) is pending on the dead consumer.
    assert pending["pending"] == 5
    assert pending["consumers"] == [{"name": b"a", "pending": 5}]

    b = Consumer(bus, FAMILY, recording_handler(redis), name="b", lease_seconds=LEASE)
    runner.start(b)
    await wait_until(handled_count(redis, 5), timeout=10)
    assert await handled(redis) == [f"m{i}" for i in range(5)]  # nothing lost, in order
    assert (await redis.xpending(stream, keys.GROUP))["pending"] == 0
    assert await bus.depth(FAMILY) == 0
    assert await redis.get(lease_key) == b"b"


async def test_cancelling_run_during_a_partition_drop_stops_it(redis: Redis) -> None:
    bus = Bus(redis, partitions=2, dedup_ttl_seconds=60)
    routing: dict[int, str] = {}
    i = 0
    while len(routing) < 2:
        routing.setdefault(bus.partition(f"contact:{i}"), f"contact:{i}")
        i += 1
    for p, key in routing.items():
        await bus.publish_once(FAMILY, key, f"e{p}", f"p{p}")

    busy: list[str] = []
    both_busy = asyncio.Event()

    async def slow(entry: Entry) -> None:  # e.g. a delivery backing off for a while
        busy.append(entry.stream)
        if len(busy) == 2:
            both_busy.set()
        await asyncio.Event().wait()

    consumer = Consumer(bus, FAMILY, slow, name="a", lease_seconds=2.0)
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(both_busy.wait(), 5)
        # Another replica joins: the fair share drops to 1, so run() gives a partition
        # back and waits (up to lease_seconds) for its busy handler to finish.
        await redis.zadd(keys.members(FAMILY), {"other": (time.time() + 60) * 1000})
        await wait_until(lambda: len(consumer.owned) == 1, timeout=5)
        await asyncio.sleep(0.05)  # run() is now inside _drop's wait_for

        task.cancel()  # what App.stop() does, once
        await asyncio.wait({task}, timeout=1)
        assert task.done(), "Consumer.run() ignored its cancellation"
    finally:
        await force_stop(task)


async def test_poison_entry_is_dead_lettered_and_partition_continues(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    attempts: Counter[str] = Counter()
    record = recording_handler(redis)

    async def handle(entry: Entry) -> None:
        attempts[entry.payload.decode()] += 1
        if entry.payload == b"poison":
            raise ValueError("cannot parse this")
        await record(entry)

    for name in ("a", "poison", "b"):
        await bus.publish_once(FAMILY, "contact:1", name, name)
    published: Any = await redis.xrange(bus.stream(FAMILY, "contact:1"))
    poison_id = published[1][0]

    runner.start(Consumer(bus, FAMILY, handle, name="c", lease_seconds=LEASE, max_failures=3))
    await wait_until(handled_count(redis, 2))
    assert await handled(redis) == ["a", "b"]
    assert attempts == {"a": 1, "poison": 3, "b": 1}

    dead: Any = await redis.xrange(keys.dead_letters(FAMILY))
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"e"] == b"poison"
    assert fields[b"stream"] == bus.stream(FAMILY, "contact:1").encode()
    assert fields[b"id"] == poison_id
    assert b"ValueError" in fields[b"error"]
    assert b"cannot parse this" in fields[b"error"]
    assert await bus.depth(FAMILY) == 0


async def test_failures_count_across_a_reread_of_the_same_entry(bus: Bus, redis: Redis) -> None:
    """A lease that lapses during a back-off gives the partition back; read again, the
    entry is not tried afresh: ``max_failures`` attempts in all, then dead-lettered."""
    attempts = 0

    async def handle(entry: Entry) -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("cannot parse this")

    consumer = Consumer(bus, FAMILY, handle, name="c", lease_seconds=LEASE, max_failures=3)
    await bus.publish_once(FAMILY, "contact:1", "poison", "poison")
    stream = bus.stream(FAMILY, "contact:1")
    [(entry_id, fields)] = await redis.xrange(stream)
    first = asyncio.create_task(consumer._handle(stream, entry_id, fields))
    await wait_until(lambda: attempts == 2)
    first.cancel()  # the partition is lost while it backs off
    await asyncio.gather(first, return_exceptions=True)
    await consumer._handle(stream, entry_id, fields)  # taken again, read again
    assert attempts == 3
    assert len(await redis.xrange(keys.dead_letters(FAMILY))) == 1
    assert consumer._failures == {}


async def test_transient_errors_retry_the_same_entry_in_order(
    bus: Bus, redis: Redis, runner: Runner
) -> None:
    attempts: Counter[str] = Counter()
    record = recording_handler(redis)

    async def handle(entry: Entry) -> None:
        payload = entry.payload.decode()
        attempts[payload] += 1
        if payload == "x" and attempts[payload] <= 2:
            raise TransientError("telegram", "429", retry_after=0.05)
        await record(entry)

    for name in ("w", "x", "y"):
        await bus.publish_once(FAMILY, "contact:1", name, name)
    # max_failures=1: transient errors must never count as failures.
    runner.start(Consumer(bus, FAMILY, handle, name="c", lease_seconds=LEASE, max_failures=1))
    await wait_until(handled_count(redis, 3))
    assert await handled(redis) == ["w", "x", "y"]
    assert attempts == {"w": 1, "x": 3, "y": 1}
    assert await redis.xlen(keys.dead_letters(FAMILY)) == 0


async def test_depth_counts_unhandled_entries(bus: Bus, redis: Redis, runner: Runner) -> None:
    assert await bus.depth(FAMILY) == 0
    for i in range(7):
        await bus.publish_once(FAMILY, f"contact:{i}", f"e{i}", f"p{i}")
    assert await bus.depth(FAMILY) == 7
    assert await bus.depth(keys.STAFF_OUT) == 0  # families are separate

    gate = asyncio.Event()
    record = recording_handler(redis)

    async def handle(entry: Entry) -> None:
        await gate.wait()
        await record(entry)

    runner.start(Consumer(bus, FAMILY, handle, name="c", lease_seconds=LEASE))
    await asyncio.sleep(0.3)
    # Delivered to the handler but not acknowledged: still counted.
    assert await bus.depth(FAMILY) == 7
    gate.set()
    await wait_until(handled_count(redis, 7))
    assert await bus.depth(FAMILY) == 0


async def test_ack_now_acknowledges_and_deletes(bus: Bus, redis: Redis) -> None:
    await bus.ensure_groups(FAMILY)
    await bus.ensure_groups(FAMILY)  # idempotent (BUSYGROUP is ignored)
    await bus.publish_once(FAMILY, "c", "e", "payload")
    stream = bus.stream(FAMILY, "c")
    reply: Any = await redis.xreadgroup(keys.GROUP, "me", {stream: ">"}, count=10)
    entry_id, fields = reply[0][1][0]
    entry = Entry(stream, entry_id.decode(), fields[b"e"])
    assert (await redis.xpending(stream, keys.GROUP))["pending"] == 1
    await bus.ack_now(entry)
    assert (await redis.xpending(stream, keys.GROUP))["pending"] == 0
    assert await bus.depth(FAMILY) == 0


async def test_apply_stores_effects_and_acks_in_few_round_trips(
    bus: Bus, redis: Redis, batch_sizes: list[int]
) -> None:
    """Concurrent handlers' "store the effects and ack" share group commits, and each
    one's writes land whole: hash, expiry, stream entry, done-marker and the ack."""
    await bus.ensure_groups(FAMILY)
    for i in range(40):
        await bus.publish_once(FAMILY, f"c{i}", f"e{i}", f"p{i}")
    entries: list[Entry] = []
    for p in range(bus.partitions):
        stream = keys.stream(FAMILY, p)
        reply: Any = await redis.xreadgroup(keys.GROUP, "me", {stream: ">"}, count=100)
        for _, items in reply:
            entries += [Entry(stream, i.decode(), f[b"e"]) for i, f in items]
    assert len(entries) == 40
    await bus.apply(lambda pipe: None)  # the script loaded (the first call finds it missing)
    batch_sizes.clear()  # only the finishes below

    async def finish(n: int, entry: Entry) -> None:
        def build(pipe: Any) -> None:
            pipe.set(f"done:{n}", "[1]", ex=timedelta(hours=1))
            pipe.hset(f"map:{n}", "a", "1", mapping={"b": "два", "c": 3})
            pipe.expire(f"map:{n}", 600)
            bus.add(pipe, keys.STAFF_OUT, f"c{n}", f"job{n}")
            bus.ack(pipe, entry)

        await bus.apply(build)

    await asyncio.gather(*(finish(n, e) for n, e in enumerate(entries)))
    assert sum(batch_sizes) == 40 and len(batch_sizes) < 10  # grouped, not one round trip each
    for n in range(40):
        assert await redis.get(f"done:{n}") == b"[1]"
        assert 3500 < await redis.ttl(f"done:{n}") <= 3600
        assert await redis.hgetall(f"map:{n}") == {b"a": b"1", b"b": "два".encode(), b"c": b"3"}
        assert 0 < await redis.ttl(f"map:{n}") <= 600
    assert await bus.depth(FAMILY) == 0  # every entry acknowledged and deleted
    assert await bus.depth(keys.STAFF_OUT) == 40


async def test_apply_reloads_its_script_after_redis_forgot_it(bus: Bus, redis: Redis) -> None:
    """A restarted Redis has no scripts: the calls that failed with NOSCRIPT run again."""
    await bus.apply(lambda pipe: pipe.set("before", "1"))
    await redis.script_flush()
    results = await asyncio.gather(
        *(bus.apply(lambda pipe, n=n: pipe.set(f"after:{n}", n)) for n in range(5)),
        bus.publish_once(FAMILY, "c", "after-flush", "p"),
    )
    assert results[-1] is True
    assert [await redis.get(f"after:{n}") for n in range(5)] == [b"0", b"1", b"2", b"3", b"4"]
