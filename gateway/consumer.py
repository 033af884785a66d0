"""Consuming the bus: each replica leases a fair share of a family's partitions and
feeds their entries, in order, to a handler (see :mod:`gateway.bus` for the guarantees).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from gateway.bus import RELEASE_LEASE, Bus, Entry, Handler, consumer_name
from gateway.errors import TransientError
from gateway.lifecycle import raise_if_cancelling
from gateway.store import keys
from gateway.store.redis import RETRYABLE, one_deadline, reply_timeout, text

log = structlog.get_logger(__name__)
STOP_GRACE = 0.5
"""Seconds a stopping consumer lets an entry in flight finish (rather than cancel it
between a platform's answer and the commit recording it, which would repeat it)."""

# Renew only a lease we still hold: after a long pause another worker may own it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class _Owned:
    task: asyncio.Task[None]
    stopping: asyncio.Event


class Consumer:
    """Owns a fair share of one family's partitions and feeds their entries to a handler.

    The handler must store its effects and :meth:`Bus.ack` the entry in one transaction.
    Raising :class:`TransientError` or a Redis connection error retries the same entry
    (order is kept); any other exception retries ``max_failures`` times, then the entry
    goes to the family's dead-letter stream. The count survives the partition changing
    hands within this consumer (a lease that lapsed during a back-off and was taken
    again): an entry is not tried afresh just because it was read again.
    """

    def __init__(
        self,
        bus: Bus,
        family: str,
        handler: Handler,
        *,
        name: str | None = None,
        lease_seconds: float = 15.0,
        batch: int = 64,
        parallel: int = 1,
        max_failures: int = 5,
        max_backoff: float = 30.0,
    ) -> None:
        self.bus = bus
        self.redis = bus.redis
        self.family = family
        self.handler = handler
        self.name = name or consumer_name()
        self.lease_ms = int(lease_seconds * 1000)
        self.batch = batch
        self.parallel = parallel
        self.max_failures = max_failures
        self.max_backoff = max_backoff
        self._owned: dict[int, _Owned] = {}
        self._draining: dict[int, _Owned] = {}
        """Partitions being given back: finishing their current entry, lease still held."""
        self._busy: Counter[str] = Counter()
        """Per stream, the entries being handled (not backing off): see _handle_all."""
        self._valid_until: dict[int, float] = {}
        """Per partition, the monotonic time our lease surely still holds until (from
        before we last set it): past it, we stop reading — another may own it."""
        self._failures: dict[str, int] = {}
        """Failed attempts of entries not yet handled or dead-lettered, by entry id."""
        self.block_ms = max(50, min(1000, self.lease_ms // 4))
        self._read_deadline = self.block_ms / 1000 + reply_timeout(self.redis)
        """A blocking read's whole round trip: the block, then the reply's own time."""
        self.margin_s = self.lease_ms / 6000
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(RELEASE_LEASE)
        self.alive_at = 0.0
        """Monotonic time of the last successful lease round (readiness probe)."""

    @property
    def owned(self) -> list[int]:
        return sorted(self._owned)

    async def run(self) -> None:
        """Balance leases until cancelled; then release everything owned."""
        log_ = log.bind(family=self.family, consumer=self.name)
        backoff = 0.05
        try:
            while True:
                try:
                    await self._balance()
                    raise_if_cancelling()  # redis-py may swallow a cancellation
                    self.alive_at = time.monotonic()
                    backoff = 0.05
                    await asyncio.sleep(self.lease_ms / 3000)
                except RETRYABLE as exc:
                    raise_if_cancelling()
                    log_.warning("bus.redis_unavailable", error=str(exc), retry_in=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await self._release_all()

    async def _balance(self) -> None:
        """One lease round. Never waits on a partition's work: a slow drain must not
        delay the renewal of the other leases (they would expire and be taken while
        still being served)."""
        now_ms = int(time.time() * 1000)
        members = keys.members(self.family)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(members, {self.name: now_ms + self.lease_ms})
            pipe.zremrangebyscore(members, "-inf", now_ms)
            pipe.zcard(members)
            live = max(1, int((await pipe.execute())[2]))
        target = math.ceil(self.bus.partitions / live)

        # Renew everything we hold, served or draining, before anything else.
        held_now = {**self._draining, **self._owned}
        sent = time.monotonic()
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in held_now:
                await self._renew(
                    keys=[self._lease(p)], args=[self.name, self.lease_ms], client=pipe
                )
            renewed = dict(zip(held_now, await pipe.execute(), strict=True))
        for p, held in renewed.items():
            if held:
                self._valid_until[p] = sent + self.lease_ms / 1000
            if not held:
                # Someone else owns it now (we were paused past the lease): stop at once.
                log.warning("bus.lease_lost", family=self.family, partition=p)
                owned = self._owned.pop(p, None) or self._draining.pop(p)
                owned.stopping.set()
                owned.task.cancel()
        # Drained (or crashed) partitions: give their leases back.
        for p, owned in [*self._draining.items(), *self._owned.items()]:
            if owned.task.done():
                self._draining.pop(p, None)
                self._owned.pop(p, None)
                await self._release(keys=[self._lease(p)], args=[self.name])
        # Another replica joined: ask some partitions to finish their entry and stop.
        while len(self._owned) > target:
            p = max(self._owned)
            owned = self._owned.pop(p)
            owned.stopping.set()
            self._draining[p] = owned
        free = [
            p
            for p in range(self.bus.partitions)
            if p not in self._owned and p not in self._draining
        ]
        random.shuffle(free)
        for p in free:
            if len(self._owned) >= target:
                break
            sent = time.monotonic()
            if await self.redis.set(self._lease(p), self.name, nx=True, px=self.lease_ms):
                self._valid_until[p] = sent + self.lease_ms / 1000
                stopping = asyncio.Event()
                self._owned[p] = _Owned(asyncio.create_task(self._serve(p, stopping)), stopping)

    def _stream(self, partition: int) -> str:
        return keys.stream(self.family, partition)

    async def _pause(self, stream: str, seconds: float) -> None:
        """A backoff between attempts: nothing is in flight, a stop need not wait."""
        self._busy[stream] -= 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self._busy[stream] += 1

    def _lease(self, partition: int) -> str:
        return keys.lease(f"{self.family}:{partition}")

    async def _release_all(self) -> None:
        """Stop every partition and give back the leases of those that did stop.

        Runs while ``run()`` is being cancelled, and may be cancelled again: the
        release finishes anyway (bounded by Redis timeouts), then the cancellation
        goes on. A partition whose task did not stop keeps its lease until it expires,
        so nobody else serves it while it may still be working.
        """
        every = {**self._draining, **self._owned}
        self._owned.clear()
        self._draining.clear()
        for p, owned in every.items():
            owned.stopping.set()
            if not self._busy[self._stream(p)]:  # a busy one finishes its entries
                owned.task.cancel()
        release = asyncio.ensure_future(self._release_stopped(every))
        cancelled = False
        while not release.done():
            try:
                await asyncio.shield(release)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    async def _release_stopped(self, every: dict[int, _Owned]) -> None:
        if every:
            tasks = [o.task for o in every.values()]
            await asyncio.wait(tasks, timeout=min(STOP_GRACE, self.lease_ms / 1000))
            for task in tasks:  # still busy (a platform hangs): stop it anyway
                task.cancel()
            await asyncio.wait(tasks, timeout=self.lease_ms / 1000)
        with contextlib.suppress(*RETRYABLE):
            for p, owned in every.items():
                if owned.task.done():
                    await self._release(keys=[self._lease(p)], args=[self.name])
            await self.redis.zrem(keys.members(self.family), self.name)

    async def _serve(self, partition: int, stopping: asyncio.Event) -> None:
        stream = keys.stream(self.family, partition)
        backoff = 0.05
        while not stopping.is_set():
            try:
                await self.bus.ensure_group(stream)
                await self._drain_pending(partition, stream, stopping)
                while not stopping.is_set():
                    # Read only while the lease surely holds for the whole blocking read:
                    # an entry read after it lapsed (Redis was away longer than the
                    # lease, or this process stalled) would be pending with us, unseen
                    # by the new owner, who drained the pending entries when it took over.
                    until = self._valid_until.get(partition, 0.0)
                    if time.monotonic() + self.block_ms / 1000 + self.margin_s > until:
                        await asyncio.sleep(0.05)
                        continue
                    async with one_deadline(self._read_deadline):  # not a timer per send
                        reply: Any = await self.redis.xreadgroup(
                            keys.GROUP,
                            self.name,
                            {stream: ">"},
                            count=self.batch,
                            block=self.block_ms,
                        )
                    for _, entries in reply or ():
                        await self._handle_all(partition, stream, entries, stopping)
                    backoff = 0.05
            except RETRYABLE as exc:
                raise_if_cancelling()
                # Redis went away: wait, then start over from the pending entries, which
                # include whatever was being handled when the connection broke.
                log.warning("bus.redis_unavailable", stream=stream, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream vanished (Redis restarted without persistence): recreate it.

    async def _handle_all(
        self, partition: int, stream: str, entries: Any, stopping: asyncio.Event
    ) -> None:
        """Handle ``entries`` until told to stop (those left stay pending, for whoever
        serves the partition next): in order, or with ``parallel`` each key's in order
        and different keys at once. While an entry is being handled the partition is
        *busy*: a graceful stop waits for it rather than cancel it between a platform's
        answer and the commit that records it (which would repeat the effect)."""
        chains = _by_key(entries) if self.parallel > 1 and len(entries) > 1 else None
        if chains is not None and len(chains) > 1:
            await self._handle_chains(stream, chains, stopping)
            return
        for entry_id, fields in entries:
            if stopping.is_set():
                return
            await self._handle_busy(stream, entry_id, fields)

    async def _handle_busy(self, stream: str, entry_id: bytes | str, fields: Any) -> None:
        self._busy[stream] += 1
        try:
            await self._handle(stream, entry_id, fields)
        finally:
            self._busy[stream] -= 1

    async def _handle_chains(
        self, stream: str, chains: list[list[tuple[Any, Any]]], stopping: asyncio.Event
    ) -> None:
        """Each chain (one key's entries, in order) in a task of its own, up to
        ``parallel`` at once. A chain that fails stops the others from starting more
        entries; those in flight finish (cancelling one between a platform's answer
        and its commit would repeat the effect), then the first failure is raised, and
        the partition starts over from its pending entries, as with one chain."""
        failed = False
        slots = asyncio.Semaphore(self.parallel)

        async def run(chain: list[tuple[Any, Any]]) -> None:
            nonlocal failed
            async with slots:
                for entry_id, fields in chain:
                    if stopping.is_set() or failed:
                        return
                    try:
                        await self._handle_busy(stream, entry_id, fields)
                    except BaseException:
                        failed = True
                        raise

        # Cancelling this (a stop, a lost lease) cancels the chains with it.
        outcomes = await asyncio.gather(*(run(c) for c in chains), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _drain_pending(self, partition: int, stream: str, stopping: asyncio.Event) -> None:
        """Claim and handle, in id order, every entry a previous owner left pending.

        min_idle_time is 0: holding the lease means nobody else is working on them.
        """
        start = "0-0"
        while not stopping.is_set():
            reply: list[Any] = await self.redis.xautoclaim(
                stream, keys.GROUP, self.name, min_idle_time=0, start_id=start, count=self.batch
            )
            start, entries = text(reply[0]), reply[1]
            await self._handle_all(partition, stream, entries, stopping)
            if start == "0-0":
                return

    async def _handle(self, stream: str, entry_id: bytes | str, fields: Any) -> None:
        entry = Entry(stream, text(entry_id), (fields or {}).get(b"e", b""))
        if not entry.payload:
            # Deleted while pending (can happen only after manual surgery): nothing to do.
            await self.bus.ack_now(entry)
            return
        backoff = 0.1
        while True:
            try:
                await self.handler(entry)
                self._failures.pop(entry.id, None)
                return
            except TransientError as exc:
                raise_if_cancelling()
                wait = max(exc.retry_after or 0.0, backoff)
                log.warning(
                    "bus.transient", stream=stream, entry=entry.id, error=str(exc), retry_in=wait
                )
                await self._pause(stream, wait)
                backoff = min(backoff * 2, self.max_backoff)
            except (*RETRYABLE, asyncio.CancelledError):
                raise
            except Exception as exc:
                raise_if_cancelling()
                failures = self._failures[entry.id] = self._failures.get(entry.id, 0) + 1
                log.exception("bus.handler_failed", stream=stream, entry=entry.id, attempt=failures)
                if failures >= self.max_failures:
                    await self._dead_letter(entry, exc)
                    self._failures.pop(entry.id, None)
                    return
                await self._pause(stream, backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _dead_letter(self, entry: Entry, exc: Exception) -> None:
        def build(pipe: Pipeline) -> None:
            pipe.xadd(
                keys.dead_letters(self.family),
                {"e": entry.payload, "stream": entry.stream, "id": entry.id, "error": repr(exc)},
            )
            self.bus.ack(pipe, entry)

        await self.bus.commit(build)
        log.error("bus.dead_lettered", stream=entry.stream, entry=entry.id, error=repr(exc))


def _by_key(entries: Any) -> list[list[tuple[Any, Any]]] | None:
    """``entries`` split by routing key, each key's in order; ``None`` when one has no
    key (it must wait for everything before it)."""
    chains: dict[bytes, list[tuple[Any, Any]]] = {}
    for entry_id, fields in entries:
        key = fields.get(b"k") if fields else None
        if key is None:
            return None
        chains.setdefault(key, []).append((entry_id, fields))
    return list(chains.values())
