"""Unit-level fixtures: a real Redis client per test (the session's redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import pytest
import redis.asyncio.connection as redis_connection

from gateway.consumer import Consumer
from gateway.store.batch import group_commit
from gateway.store.redis import Redis, connect


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def batch_sizes(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every group commit ``redis`` sends during the test, in order."""
    sizes: list[int] = []
    group = group_commit(redis)
    run = group._run

    async def counting(batch: Any, **kw: Any) -> list[Any]:
        sizes.append(len(batch))
        return await run(batch, **kw)

    monkeypatch.setattr(group, "_run", counting)
    return sizes


class RedisTimers:
    """redis-py's own timers as they are set: ``wait_for`` around a send, ``timeout``
    around a reply. Each is recorded with the :attr:`label` current when it was set."""

    label: ContextVar[str] = ContextVar("redis_timer_label", default="")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.set: list[tuple[str, str]] = []
        """(label, ``wait_for`` or ``timeout``), in order."""
        for module, name in ((asyncio, "wait_for"), (redis_connection, "async_timeout")):
            monkeypatch.setattr(module, name, self._recording(name, getattr(module, name)))

    def _recording(self, kind: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.set.append((self.label.get(), kind.removeprefix("async_")))
            return real(*args, **kwargs)

        return recorded


@pytest.fixture
def redis_timers(monkeypatch: pytest.MonkeyPatch) -> RedisTimers:
    return RedisTimers(monkeypatch)


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


class Runner:
    """Starts consumers' ``run()`` as tasks and stops them all at the end of a test."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, consumer: Consumer) -> asyncio.Task[None]:
        task = asyncio.create_task(consumer.run())
        self.tasks.append(task)
        return task

    async def stop(self, task: asyncio.Task[None]) -> None:
        await force_stop(task)

    async def stop_all(self) -> None:
        for task in self.tasks:
            await self.stop(task)


async def force_stop(task: asyncio.Task[None], timeout: float = 10.0) -> None:
    """Cancel until the task is done.

    One ``cancel()`` is not always enough: see
    ``test_cancelling_run_during_a_partition_drop_stops_it`` (a product bug) and, on
    Python 3.11, redis-py's ``asyncio.wait_for`` around socket writes, which can swallow
    a cancellation that arrives just as a write completes.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        if loop.time() > deadline:
            raise AssertionError(f"{task!r} did not stop within {timeout} s")
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    if not task.cancelled():
        exc = task.exception()
        if exc is not None:
            raise exc


@pytest.fixture
async def runner() -> AsyncIterator[Runner]:
    r = Runner()
    try:
        yield r
    finally:
        await r.stop_all()
