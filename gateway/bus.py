"""Durable queues on Redis Streams: publish once, consume in order, survive crashes.

Three stream families (``keys.FAMILIES``) carry the whole data flow: inbound events,
outbound posts into staff topics, outbound replies to customers. Each family is split
into ``bus.partitions`` streams by a hash of the contact (or sender) so that

- **order per contact** holds: a partition is owned by exactly one consumer at a time
  (a lease in Redis) and its entries are handled one after another;
- **crash safety** holds: an entry is acknowledged (and deleted) only in the same
  transaction that stores its effects; a consumer that dies leaves its entries pending
  and its lease expires; the next owner claims them with XAUTOCLAIM first;
- **replicas balance**: every consumer takes a fair share of the partitions and gives
  back extra ones when another replica joins.

An entry whose handler keeps failing for a reason that is not transient is moved to a
dead-letter stream (kept, replayable) so that one poison message cannot stop a contact's
line forever, and nothing is ever silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, ResponseError

from gateway.errors import TransientError
from gateway.lifecycle import raise_if_cancelling
from gateway.store import keys
from gateway.store.redis import RETRYABLE, Redis, text
from gateway.store.writes import Writes

log = structlog.get_logger(__name__)

# SET NX and XADD in one script. As two commands, a crash between "remember the key"
# and "append the event" would make the platform's retry look like a duplicate: lost.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
end
return false
"""
# Renew only a lease we still hold: after a long pause another worker may own it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def consumer_name() -> str:
    """Unique per process and start: a restarted worker must not inherit a dead one's name."""
    return f"{socket.gethostname()}-{os.getpid()}-{random.randrange(1 << 32):08x}"  # noqa: S311


@dataclass(frozen=True, slots=True)
class _Publish:
    keys: tuple[str, str]
    payload: str
    future: asyncio.Future[bool]


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry handed to a handler; the handler acks it with :meth:`Bus.ack`."""

    stream: str
    id: str
    payload: bytes


Handler = Callable[[Entry], Awaitable[None]]


class Bus:
    """Publishing into, and acknowledging from, the partitioned streams."""

    def __init__(self, redis: Redis, *, partitions: int, dedup_ttl_seconds: int) -> None:
        self.redis = redis
        self.partitions = partitions
        self.dedup_ttl_seconds = dedup_ttl_seconds
        self._publish_once = redis.register_script(_PUBLISH_ONCE)
        self._pending: list[_Publish] = []
        self._flusher: asyncio.Task[None] | None = None

    def partition(self, routing_key: str) -> int:
        """Stable across processes and restarts (unlike ``hash()``)."""
        return zlib.crc32(routing_key.encode()) % self.partitions

    def stream(self, family: str, routing_key: str) -> str:
        return keys.stream(family, self.partition(routing_key))

    async def publish_once(
        self, family: str, routing_key: str, event_key: str, payload: str
    ) -> bool:
        """Append ``payload`` unless ``event_key`` was seen; True when it was appended.

        Returns only after Redis has the entry (ack-after-durable for webhooks).
        Concurrent calls are group-committed: whatever arrives while one batch is on
        the wire goes out as the next batch in one pipeline, so a burst of webhooks
        costs a few round trips instead of one each, and every caller still waits for
        the reply to its own script.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        keys_ = (keys.seen(event_key), self.stream(family, routing_key))
        self._pending.append(_Publish(keys_, payload, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._run_batch(batch)
            except Exception as exc:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, result in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result is not None)

    async def _run_batch(self, batch: list[_Publish], *, reload: bool = True) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in batch:
                pipe.evalsha(
                    self._publish_once.sha, 2, *item.keys, self.dedup_ttl_seconds, item.payload
                )
            results: list[Any] = await pipe.execute(raise_on_error=False)
        failed = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if failed and reload:
            # A restarted Redis forgot the script (scripts are not persisted). Those
            # calls did nothing, so loading the script and running just them again is
            # safe; the calls that succeeded keep their results.
            await self.redis.script_load(_PUBLISH_ONCE)
            again = await self._run_batch([batch[i] for i in failed], reload=False)
            for i, result in zip(failed, again, strict=True):
                results[i] = result
        return results

    def add(self, pipe: Pipeline | Writes, family: str, routing_key: str, payload: str) -> None:
        """Queue an XADD inside the caller's transaction (effects + ack together)."""
        pipe.xadd(self.stream(family, routing_key), {"e": payload})

    @staticmethod
    def ack(pipe: Pipeline | Writes, entry: Entry) -> None:
        """Acknowledge and delete ``entry`` inside the caller's transaction."""
        pipe.xack(entry.stream, keys.GROUP, entry.id)
        pipe.xdel(entry.stream, entry.id)

    async def ack_now(self, entry: Entry) -> None:
        await self.commit(lambda pipe: self.ack(pipe, entry))

    async def commit(self, build: Callable[[Pipeline], None], *, max_wait: float = 5.0) -> None:
        """Run one MULTI/EXEC transaction, retrying while Redis is unreachable.

        Used for "store the effects and ack": the effect already happened (a message was
        sent), so when Redis blinks the right move is to record it once Redis is back,
        not to hand the entry back and do the effect again. Every such transaction is
        idempotent (SET, HSET, XACK, XDEL; an XADD of a job with a fixed out_id that
        delivery deduplicates), so repeating one whose reply was lost is harmless.
        """
        backoff = 0.05
        while True:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    build(pipe)
                    await pipe.execute()
                return
            except RETRYABLE as exc:
                raise_if_cancelling()
                log.warning("bus.commit_retry", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max_wait)

    async def ensure_groups(self, family: str) -> None:
        # Start at id 0, not "$": events published before the first worker ever started
        # (a webhook answered while workers were down) must not be skipped.
        for p in range(self.partitions):
            await self.ensure_group(keys.stream(family, p))

    async def ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def depth(self, family: str) -> int:
        """Entries not yet handled (pending or undelivered) in a family."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.xlen(keys.stream(family, p))
            return sum(await pipe.execute())


@dataclass(frozen=True, slots=True)
class _Owned:
    task: asyncio.Task[None]
    stopping: asyncio.Event


class Consumer:
    """Owns a fair share of one family's partitions and feeds their entries to a handler.

    The handler must store its effects and :meth:`Bus.ack` the entry in one transaction.
    Raising :class:`TransientError` or a Redis connection error retries the same entry
    (order is kept); any other exception retries ``max_failures`` times, then the entry
    goes to the family's dead-letter stream.
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
        self.max_failures = max_failures
        self.max_backoff = max_backoff
        self._owned: dict[int, _Owned] = {}
        self._draining: dict[int, _Owned] = {}
        """Partitions being given back: finishing their current entry, lease still held."""
        self._valid_until: dict[int, float] = {}
        """Per partition, the monotonic time our lease surely still holds until (from
        before we last set it): past it, we stop reading — another may own it."""
        self.block_ms = max(50, min(1000, self.lease_ms // 4))
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
        for owned in every.values():
            owned.stopping.set()
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
            await asyncio.wait([o.task for o in every.values()], timeout=self.lease_ms / 1000)
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
                await self._drain_pending(stream, stopping)
                while not stopping.is_set():
                    # Read only while the lease surely holds for the whole blocking read:
                    # an entry read after it lapsed (Redis was away longer than the
                    # lease, or this process stalled) would be pending with us, unseen
                    # by the new owner, who drained the pending entries when it took over.
                    until = self._valid_until.get(partition, 0.0)
                    if time.monotonic() + self.block_ms / 1000 + self.margin_s > until:
                        await asyncio.sleep(0.05)
                        continue
                    reply: Any = await self.redis.xreadgroup(
                        keys.GROUP, self.name, {stream: ">"}, count=self.batch, block=self.block_ms
                    )
                    for _, entries in reply or ():
                        for entry_id, fields in entries:
                            await self._handle(stream, entry_id, fields)
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

    async def _drain_pending(self, stream: str, stopping: asyncio.Event) -> None:
        """Claim and handle, in id order, every entry a previous owner left pending.

        min_idle_time is 0: holding the lease means nobody else is working on them.
        """
        start = "0-0"
        while not stopping.is_set():
            reply: list[Any] = await self.redis.xautoclaim(
                stream, keys.GROUP, self.name, min_idle_time=0, start_id=start, count=self.batch
            )
            start, entries = text(reply[0]), reply[1]
            for entry_id, fields in entries:
                await self._handle(stream, entry_id, fields)
            if start == "0-0":
                return

    async def _handle(self, stream: str, entry_id: bytes | str, fields: Any) -> None:
        entry = Entry(stream, text(entry_id), (fields or {}).get(b"e", b""))
        if not entry.payload:
            # Deleted while pending (can happen only after manual surgery): nothing to do.
            await self.bus.ack_now(entry)
            return
        failures = 0
        backoff = 0.1
        while True:
            try:
                await self.handler(entry)
                return
            except TransientError as exc:
                raise_if_cancelling()
                wait = max(exc.retry_after or 0.0, backoff)
                log.warning(
                    "bus.transient", stream=stream, entry=entry.id, error=str(exc), retry_in=wait
                )
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, self.max_backoff)
            except (*RETRYABLE, asyncio.CancelledError):
                raise
            except Exception as exc:
                raise_if_cancelling()
                failures += 1
                log.exception("bus.handler_failed", stream=stream, entry=entry.id, attempt=failures)
                if failures >= self.max_failures:
                    await self._dead_letter(entry, exc)
                    return
                await asyncio.sleep(backoff)
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
