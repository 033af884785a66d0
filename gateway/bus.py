"""Durable queues on Redis Streams: publish once, consume in order, survive crashes.

Three stream families (``keys.FAMILIES``) carry the whole data flow: inbound events,
outbound posts into staff topics, outbound replies to customers. Each family is split
into ``bus.partitions`` streams by a hash of the contact (or sender) so that

- **order per contact** holds: a partition is owned by exactly one consumer at a time
  (a lease in Redis), and the entries of one routing key (a customer's chat, a staff
  topic, a contact's deliveries) are handled one after another; different keys of a
  partition may be handled at once;
- **crash safety** holds: an entry is acknowledged (and deleted) only in the same
  transaction that stores its effects; a consumer that dies leaves its entries pending
  and its lease expires; the next owner claims them with XAUTOCLAIM first;
- **replicas balance**: every consumer takes a fair share of the partitions and gives
  back extra ones when another replica joins.

An entry whose handler keeps failing for a reason that is not transient is moved to a
dead-letter stream (kept, replayable) so that one poison message cannot stop a contact's
line forever, and nothing is ever silently dropped.

This module publishes and commits; :mod:`gateway.consumer` reads and leases.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from gateway.lifecycle import raise_if_cancelling
from gateway.store import keys
from gateway.store.batch import batched
from gateway.store.redis import RETRYABLE, Redis
from gateway.store.writes import Writes, lua_run

log = structlog.get_logger(__name__)

# SET NX and XADD in one script. As two commands, a crash between "remember the key"
# and "append the event" would make the platform's retry look like a duplicate: lost.
# ARGV: 1 the key's TTL, 2 the payload, 3 the routing key (see Bus.fields).
PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], '*', 'e', ARGV[2], 'k', ARGV[3])
end
return false
"""
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Writes recorded by :class:`Writes`, run in order, atomically (one script).
_APPLY = lua_run(1) + "return 1\n"


def partition(routing_key: str, partitions: int) -> int:
    """The partition of ``routing_key``: stable across processes and restarts (unlike
    ``hash()``)."""
    return zlib.crc32(routing_key.encode()) % partitions


def consumer_name() -> str:
    """Unique per process and start: a restarted worker must not inherit a dead one's name."""
    return f"{socket.gethostname()}-{os.getpid()}-{random.randrange(1 << 32):08x}"  # noqa: S311


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry handed to a handler; the handler acks it with :meth:`Bus.ack`.

    In Redis an entry has two fields: ``e``, the payload, and ``k``, the routing key it
    was published under. Order is kept per routing key, so a consumer may handle the
    entries of different keys at once (see :class:`gateway.consumer.Consumer`); an
    entry without ``k`` (published before keys were stored) is ordered after everything
    before it.
    """

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
        self._publish_once = redis.register_script(PUBLISH_ONCE)
        self._apply = redis.register_script(_APPLY)

    def partition(self, routing_key: str) -> int:
        return partition(routing_key, self.partitions)

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
        keys_ = (keys.seen(event_key), self.stream(family, routing_key))
        args = (self.dedup_ttl_seconds, payload, routing_key)
        return await batched(self._publish_once, keys=keys_, args=args) is not None

    def add(self, pipe: Pipeline | Writes, family: str, routing_key: str, payload: str) -> None:
        """Queue an XADD inside the caller's transaction (effects + ack together)."""
        pipe.xadd(self.stream(family, routing_key), self.fields(routing_key, payload))

    @staticmethod
    def fields(routing_key: str, payload: str) -> dict[FieldT, EncodableT]:
        """A stream entry's fields (see :class:`Entry`)."""
        return {"e": payload, "k": routing_key}

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

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                build(pipe)
                await pipe.execute()

        await _until_stored(run, max_wait)

    async def apply(self, build: Callable[[Writes], None], *, max_wait: float = 5.0) -> None:
        """:meth:`commit` for writes :class:`Writes` can record, as one script in the next
        group commit: under load many handlers' "store the effects and ack" share one
        round trip instead of a MULTI/EXEC each. The same retries and idempotence as
        :meth:`commit`."""
        writes = Writes()
        build(writes)
        args = writes.args()
        await _until_stored(lambda: batched(self._apply, args=args), max_wait)

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


async def _until_stored(run: Callable[[], Awaitable[object]], max_wait: float) -> None:
    """``run()`` until Redis takes it, backing off while Redis is unreachable."""
    backoff = 0.05
    while True:
        try:
            await run()
            return
        except RETRYABLE as exc:
            raise_if_cancelling()
            log.warning("bus.commit_retry", error=str(exc), retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_wait)
