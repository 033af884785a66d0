"""Group commit of script calls, against a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.store.batch import Reads, batched, group_commit, read
from gateway.store.redis import EmbeddedRedis, Redis, close, connect, one_deadline
from tests.conftest import free_port, own_redis_server

from .conftest import RedisTimers

_ECHO = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


async def test_each_caller_gets_its_own_reply_or_error(redis: Redis) -> None:
    script = redis.register_script(_ECHO)
    await redis.set("text", "not a number")
    calls = [batched(script, keys=[f"n:{i}"], args=[i]) for i in range(9)]
    calls.insert(4, batched(script, keys=["text"], args=[1]))  # fails in Redis
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[4], ResponseError)
    assert [r for i, r in enumerate(results) if i != 4] == list(range(9))


async def test_a_cancelled_caller_leaves_the_others_their_replies(redis: Redis) -> None:
    script = redis.register_script(_ECHO)
    await script(keys=["warm"], args=[1])  # loaded: one batch, no NOSCRIPT retry
    first = asyncio.ensure_future(batched(script, keys=["a"], args=[1]))
    second = asyncio.ensure_future(batched(script, keys=["b"], args=[2]))
    first.cancel()
    assert await second == 2
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await redis.get("a") is None  # cancelled before its batch left: not run


async def test_calls_are_grouped_while_a_batch_is_on_the_wire(
    redis: Redis, batch_sizes: list[int]
) -> None:
    script = redis.register_script(_ECHO)
    await script(keys=["warm"], args=[1])
    await asyncio.gather(*(batched(script, keys=[f"g:{i}"], args=[1]) for i in range(100)))
    assert sum(batch_sizes) == 100 and len(batch_sizes) <= 3


async def test_redis_unreachable_fails_every_caller_with_a_connection_error() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0")
    script = client.register_script(_ECHO)
    try:
        results = await asyncio.gather(
            *(batched(script, keys=["k"], args=[1]) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, RedisConnectionError | ConnectionError) for r in results)
    finally:
        await client.aclose()


async def test_reads_share_the_batch_and_come_back_as_redis_py_returns_them(
    redis: Redis, batch_sizes: list[int]
) -> None:
    script = redis.register_script(_ECHO)
    await script(keys=["warm"], args=[1])
    await redis.sadd("set", "a", "b")
    await redis.set("plain", "v")
    reads = Reads()
    reads.exists("plain", "set", "missing")
    reads.scard("set")
    reads.smembers("set")
    reads.get("plain")
    reads.get("missing")
    wrong = Reads()
    wrong.get("missing")
    wrong.scard("plain")  # WRONGTYPE: this caller's error alone
    results = await asyncio.gather(
        batched(script, keys=["r:1"], args=[5]),
        read(redis, reads),
        read(redis, wrong),
        batched(script, keys=["r:2"], args=[6]),
        return_exceptions=True,
    )
    assert results[0] == 5 and results[3] == 6
    assert results[1] == [2, 2, {b"a", b"b"}, b"v", None]
    assert isinstance(results[2], ResponseError) and "WRONGTYPE" in str(results[2])
    assert batch_sizes == [4]  # one round trip for the scripts and the reads


async def test_reads_after_a_redis_restart_need_no_script_reload(redis: Redis) -> None:
    script = redis.register_script(_ECHO)
    await redis.script_flush()  # as a restarted Redis: the script is unknown
    reads = Reads()
    reads.exists("nothing")
    got = await asyncio.gather(batched(script, keys=["s:1"], args=[3]), read(redis, reads))
    assert got == [3, [0]]


async def test_a_connection_the_server_closed_fails_its_batch_and_is_replaced(
    redis: Redis, redis_url: str
) -> None:
    script = redis.register_script(_ECHO)
    await script(keys=["warm"], args=[1])
    assert await batched(script, keys=["c:1"], args=[1]) == 1
    pool: Any = redis.connection_pool
    assert pool._available_connections  # the batch's connection, back in the pool
    killer = connect(redis_url)
    try:  # the server closes every other client's connection (a proxy, a failover)
        await killer.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    finally:
        await killer.aclose()
    failed = await asyncio.gather(
        batched(script, keys=["c:1"], args=[1]),
        batched(script, keys=["c:2"], args=[2]),
        return_exceptions=True,
    )
    assert all(isinstance(f, RedisConnectionError) for f in failed), failed
    # Every caller learnt it; the next batch goes on a new connection.
    got = await asyncio.gather(
        batched(script, keys=["c:1"], args=[1]), batched(script, keys=["c:2"], args=[2])
    )
    assert got == [2, 2]  # nothing ran twice


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    """A redis-server of this test's own: it is going to be paused."""
    async with own_redis_server(tmp_path / "redis") as server:
        try:
            yield server
        finally:  # never leave it stopped (nor stop it while it is)
            os.kill(int(server.pidfile.read_text()), signal.SIGCONT)


async def test_a_hung_redis_fails_the_batch_at_its_deadline_and_drops_the_connection(
    own_redis: EmbeddedRedis,
) -> None:
    client = connect(own_redis.url)
    try:
        script = client.register_script(_ECHO)
        assert await batched(script, keys=["warm"], args=[1]) == 1
        group_commit(client).deadline = 0.3
        pid = int(own_redis.pidfile.read_text())
        os.kill(pid, signal.SIGSTOP)  # alive, connected, answering nothing
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError, match=r"did not answer within 0\.3 s"):
            await batched(script, keys=["late"], args=[100])
        assert time.monotonic() - started < 2
        os.kill(pid, signal.SIGCONT)
        # The late call's reply arrives on the dropped connection, never read as this one's.
        assert await batched(script, keys=["next"], args=[1]) == 1
        assert await client.get("late") == b"100"  # it did run: callers retry idempotently
    finally:
        await close(client)


async def test_a_group_commit_sets_no_timer_per_send_or_reply(
    redis: Redis, redis_timers: RedisTimers
) -> None:
    script = redis.register_script(_ECHO)
    await script(keys=["warm"], args=[1])
    redis_timers.set.clear()
    reads = Reads()
    reads.get("g:0")
    got = await asyncio.gather(
        *(batched(script, keys=[f"g:{i}"], args=[i]) for i in range(20)), read(redis, reads)
    )
    assert got == [*range(20), [b"0"]]
    assert redis_timers.set == []  # one deadline for the whole round trip instead
    assert await redis.get("g:1") == b"1"  # a command of its own keeps redis-py's timeouts
    assert {kind for _, kind in redis_timers.set} == {"wait_for", "timeout"}
    pool: Any = redis.connection_pool
    assert all(c.socket_timeout for c in pool._available_connections)  # restored


async def test_only_the_deadline_s_own_expiry_becomes_a_redis_timeout() -> None:
    with pytest.raises(RedisTimeoutError, match=r"within 0\.01 s"):
        async with one_deadline(0.01):
            await asyncio.sleep(1)
    with pytest.raises(TimeoutError, match="something else") as raised:
        async with one_deadline(5):
            raise TimeoutError("something else")
    assert not isinstance(raised.value, RedisTimeoutError)
