"""From the events stream to the delivery queues: read once, hand on durably, then ack.

The events stream (``gw:events``) is read through its own consumer group
(``webhooks``), so the other readers of the stream are unaffected and every replica
shares one position in it. One replica at a time holds the fan-out lease and reads; the
others wait for it. A single reader keeps the events of a contact in the order they
were recorded (two readers could commit their batches the other way round); one
transaction per batch is far cheaper than the HTTP calls behind it.

A batch is acknowledged in the same MULTI/EXEC that appends its deliveries to the
queues, and that transaction runs only while the lease is still ours (WATCH). So:

- a fan-out killed before the commit leaves the batch pending in the group; the next
  lease holder claims the pending entries first (XAUTOCLAIM) and fans them out;
- a commit whose reply was lost is not retried blindly: the next round claims what is
  still pending, which is nothing if the commit went through;
- a holder that stalled past its lease cannot commit after another took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from redis.exceptions import ResponseError, WatchError

from gateway.bus import RELEASE_LEASE
from gateway.config import WebhookTarget
from gateway.integrations import keys as hk
from gateway.integrations.payload import BadEvent, Delivery, Event
from gateway.integrations.queue import Queues
from gateway.lifecycle import raise_if_cancelling
from gateway.store import keys
from gateway.store.redis import RETRYABLE, Redis, text

log = structlog.get_logger(__name__)

# Renew only a lease we still hold (as the bus does).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class LeaseLost(Exception):
    """Another replica holds the fan-out lease now."""


class FanOut:
    def __init__(
        self,
        redis: Redis,
        targets: Sequence[WebhookTarget],
        queues: Queues,
        *,
        name: str,
        lease_seconds: float,
        wake: Callable[[str], None],
        batch: int = 200,
    ) -> None:
        self.redis = redis
        self.targets = tuple(targets)
        self.queues = queues
        self.name = name
        self.lease_ms = int(lease_seconds * 1000)
        self.wake = wake
        """Called with a target's id when deliveries were queued for it (this replica's
        workers start at once instead of at their next look)."""
        self.batch = batch
        self.block_ms = max(50, min(1000, self.lease_ms // 4))
        self.margin_s = self.lease_ms / 6000
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(RELEASE_LEASE)
        self._held = False
        self._valid_until = 0.0
        """Monotonic time until which the lease surely holds."""
        self._renew_at = 0.0
        self.alive_at = 0.0
        self.fanned = 0
        """Events handed on by this replica (all targets), for tests and metrics."""

    async def prepare(self, start: str = "$") -> None:
        """Create the consumer group at the stream's end: a target gets the events
        recorded from the moment webhooks were first configured, not years of history."""
        try:
            await self.redis.xgroup_create(keys.EVENTS, hk.GROUP, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        backoff = 0.05
        try:
            while True:
                try:
                    if await self._hold():
                        await self._round()
                    else:
                        await asyncio.sleep(self.lease_ms / 3000)
                    self.alive_at = time.monotonic()
                    backoff = 0.05
                except (LeaseLost, WatchError):
                    log.warning("webhooks.fanout_lease_lost", consumer=self.name)
                    self._held = False
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    # The stream vanished (a Redis restarted without its data): what was
                    # recorded since is all new, so the recreated group starts at 0.
                    log.error("webhooks.events_group_lost")
                    await self.prepare("0")
                except RETRYABLE as exc:
                    raise_if_cancelling()
                    log.warning("webhooks.redis_unavailable", error=str(exc), retry_in=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            if self._held:
                with contextlib.suppress(*RETRYABLE):
                    await self._release(keys=[hk.FANOUT_LEASE], args=[self.name])

    async def _hold(self) -> bool:
        """Take or renew the lease when a third of it has passed; True while held."""
        sent = time.monotonic()
        if self._held and sent < self._renew_at:
            return True
        if self._held:
            if not await self._renew(keys=[hk.FANOUT_LEASE], args=[self.name, self.lease_ms]):
                raise LeaseLost
        elif not await self.redis.set(hk.FANOUT_LEASE, self.name, nx=True, px=self.lease_ms):
            return False
        self._held = True
        self._valid_until = sent + self.lease_ms / 1000
        self._renew_at = sent + self.lease_ms / 3000
        return True

    async def _round(self) -> None:
        """Fan out what a previous holder left pending, else wait for new events."""
        reply: list[Any] = await self.redis.xautoclaim(
            keys.EVENTS, hk.GROUP, self.name, min_idle_time=0, start_id="0-0", count=self.batch
        )
        entries = [(i, f) for i, f in reply[1] if i is not None]
        if len(entries) < len(reply[1]):
            await self._ack_vanished()
        if not entries:
            # Block only while the lease surely holds for the whole read (see bus.py):
            # an entry read after it lapsed would be pending with us, unseen by the next.
            if time.monotonic() + self.block_ms / 1000 + self.margin_s > self._valid_until:
                self._renew_at = 0.0  # renew first
                return
            read: Any = await self.redis.xreadgroup(
                hk.GROUP, self.name, {keys.EVENTS: ">"}, count=self.batch, block=self.block_ms
            )
            entries = [(i, f) for _, found in read or () for i, f in found]
        if entries:
            await self._fan(entries)

    async def _ack_vanished(self) -> None:
        """Acknowledge pending entries that are gone from the stream (trimmed before
        they were handed on). Redis 6.2 keeps them pending and XAUTOCLAIM returns them
        without their ids, so they are found through XPENDING. Logged: those events
        were lost to the stream's cap before any target saw them."""
        pending: list[Any] = await self.redis.xpending_range(
            keys.EVENTS, hk.GROUP, min="-", max="+", count=self.batch
        )
        gone = []
        for entry in pending:
            entry_id = entry["message_id"]
            if not await self.redis.xrange(keys.EVENTS, entry_id, entry_id):
                gone.append(entry_id)
        if gone:
            await self.redis.xack(keys.EVENTS, hk.GROUP, *gone)
            log.error("webhooks.events_trimmed_before_sent", events=[text(i) for i in gone])

    async def _fan(self, entries: list[tuple[bytes, dict[bytes, bytes] | None]]) -> None:
        deliveries: list[Delivery] = []
        for raw_id, fields in entries:
            event_id = text(raw_id)
            if not fields:
                continue  # trimmed away while pending: nothing left to send
            try:
                event = Event.parse(event_id, fields)
            except BadEvent as exc:
                log.error("webhooks.bad_event", event_id=event_id, error=str(exc))
                continue
            deliveries += [event.to(t.id) for t in self.targets if t.wants(event.type)]
        now_ms = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(hk.FANOUT_LEASE)
            if await pipe.get(hk.FANOUT_LEASE) != self.name.encode():
                raise LeaseLost
            pipe.multi()  # type: ignore[no-untyped-call]
            for delivery in deliveries:
                self.queues.enqueue(pipe, delivery, now_ms)
            pipe.xack(keys.EVENTS, hk.GROUP, *[i for i, _ in entries])
            await pipe.execute()
        self.fanned += len(entries)
        for target in {d.target for d in deliveries}:
            self.wake(target)
        if deliveries:
            log.debug("webhooks.fanned_out", events=len(entries), deliveries=len(deliveries))
