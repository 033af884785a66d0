"""The emulators' outgoing HTTP: callbacks to the gateway and downloads of its media.

Platforms push events to a bot's server (VK's Callback API, Viber's webhook) one at a
time per receiver, in order, and retry a receiver that does not answer as expected with
a growing pause before they give up on the event. :class:`OutgoingHttp` owns what that
takes — one lazily opened client session, an ordered queue per receiver, background tasks
— so that :meth:`OutgoingHttp.idle` can wait for everything in flight (tests) and
:meth:`OutgoingHttp.close` can stop it all (shutdown). What is posted, and what counts as
accepted, is each emulator's business.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any

from aiohttp import ClientSession, ClientTimeout

Job = Callable[[], Awaitable[None]]

BACKOFF_CAP = 2.0
"""The longest pause between two attempts (seconds)."""


class OutgoingHttp:
    """Session, per-receiver queues, retries and background tasks of one emulator."""

    def __init__(self, *, attempts: int = 4, backoff: float = 0.05, timeout: float = 10.0) -> None:
        """``attempts`` per delivery; the pause after a failed attempt starts at ``backoff``
        seconds and doubles (up to :data:`BACKOFF_CAP`); ``timeout`` per request."""
        self.attempts = attempts
        self.backoff = backoff
        self._timeout = ClientTimeout(total=timeout)
        self._client: ClientSession | None = None
        self._queues: dict[Hashable, deque[Job]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` has begun."""
        return self._closing.is_set()

    def session(self) -> ClientSession:
        """The client session (opened on first use, reopened after close)."""
        if self._client is None or self._client.closed:
            self._client = ClientSession(timeout=self._timeout)
        return self._client

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background; :meth:`idle` waits for it, :meth:`close` cancels."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def enqueue(self, receiver: Hashable, job: Job) -> None:
        """Run ``job`` after the jobs queued for the same ``receiver`` before it."""
        self._queues.setdefault(receiver, deque()).append(job)
        worker = self._workers.get(receiver)
        if worker is None or worker.done():
            loop = asyncio.get_running_loop()
            self._workers[receiver] = loop.create_task(self._work(receiver))

    async def _work(self, receiver: Hashable) -> None:
        queue = self._queues[receiver]
        while queue and not self._closing.is_set():
            await queue[0]()
            queue.popleft()

    async def retry(
        self, attempt: Callable[[int], Awaitable[bool]], attempts: int | None = None
    ) -> bool:
        """Call ``attempt(1)``, ``attempt(2)``, ... until one returns ``True`` (done) or
        ``attempts`` (default :attr:`attempts`) are used, pausing between them; whether
        one succeeded."""
        limit = self.attempts if attempts is None else attempts
        for number in range(1, limit + 1):
            if await attempt(number):
                return True
            if number < limit:
                await self.pause(number)
        return False

    async def pause(self, attempt: int) -> None:
        """The pause after failed attempt number ``attempt`` (cut short by close)."""
        delay = min(self.backoff * 2 ** (attempt - 1), BACKOFF_CAP)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    def _busy(self) -> list[asyncio.Task[Any]]:
        return [t for t in (*self._workers.values(), *self._tasks) if not t.done()]

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued delivery and background task is finished."""
        async with asyncio.timeout(timeout):
            while busy := self._busy():
                await asyncio.wait(busy)

    async def close(self) -> None:
        """Stop delivering, cancel background tasks and close the client session."""
        self._closing.set()
        tasks = self._busy()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.close()
