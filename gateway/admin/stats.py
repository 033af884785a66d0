"""The statistics consumer: reads ``keys.EVENTS`` through its own consumer group and
adds every event to its day's counters, exactly once across all replicas.

Every replica runs one. The consumer group hands each entry to one of them; an entry
read by a replica that died stays pending and is claimed by another after
``claim_idle_seconds``. Counting is one Lua script: it adds the event id to the day's
*seen* set and, only if it was not there, adds the counters — then acknowledges the
entry, all atomically. So a crash can never leave an event counted but pending (it
would be counted again when redelivered), and a stalled replica that wakes up and
counts an entry another replica already claimed and counted adds nothing. Entries that
count for nothing (most ``task.updated``) are acknowledged together, one XACK per batch
read; a crash before it leaves them pending, to be read again and found worth nothing.

Histograms for Prometheus (first response and resolution per account, ratings) are
observed by the replica that counted the event, once: summing them over the replicas
gives the true totals.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import structlog
from pydantic import TypeAdapter
from redis.exceptions import ResponseError

from gateway.admin import events as ev
from gateway.config import Settings
from gateway.lifecycle import raise_if_cancelling
from gateway.metrics import Metrics
from gateway.process import Process
from gateway.store import keys
from gateway.store.batch import batched
from gateway.store.redis import RETRYABLE, Redis, text

log = structlog.get_logger(__name__)
PROCESS: TypeAdapter[Process] = TypeAdapter(Process)
ARCHIVE_SEARCHED = 5
"""Archived processes searched for a closed task (newest first): a task closes today or
is carried into today's process, so it is in the current process or the last ones."""

# KEYS: the day's counters, the day's seen set, the events stream. ARGV: group, entry
# id, the counters' TTL, the seen set's TTL, then field/increment pairs. Returns 1 when
# the event was counted now, 0 when it had been already (or counts for nothing). The
# ack is in the same script: "counted" and "acknowledged" cannot be separated by a crash.
_COUNT = """
local fresh = 0
if #ARGV > 4 and redis.call('SADD', KEYS[2], ARGV[2]) == 1 then
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  for i = 5, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  fresh = 1
end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
return fresh
"""


class StatsConsumer:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        metrics: Metrics,
        *,
        name: str,
        claim_idle_seconds: float = 60.0,
        block_ms: int = 1000,
        batch: int = 100,
        max_failures: int = 5,
    ) -> None:
        self.redis = redis
        self.settings = settings
        """Read at every event (its time zone): a config reload may assign new ones."""
        self.metrics = metrics
        self.name = name
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.block_ms = block_ms
        self.batch = batch
        self.max_failures = max_failures
        self._count = redis.register_script(_COUNT)
        self._claimed_at = 0.0
        self._worthless: list[str] = []
        """Entries that count for nothing, acknowledged together after their batch."""
        self.alive_at = 0.0
        """Monotonic time of the last successful read (for readiness checks)."""

    async def ensure_group(self) -> None:
        # From id 0: events recorded before the statistics first ran are counted too.
        try:
            await self.redis.xgroup_create(keys.EVENTS, ev.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Count events until cancelled, riding out Redis outages."""
        backoff = 0.05
        while True:
            try:
                await self.ensure_group()
                while True:
                    if time.monotonic() - self._claimed_at >= self.claim_idle_ms / 4000:
                        await self.claim_stale()
                    await self.read_once()
                    # redis-py can swallow a cancellation that lands in a blocking
                    # read (measured: the read returns, the task is still cancelling):
                    # stop now rather than block again until the next cancel.
                    raise_if_cancelling()
                    self.alive_at = time.monotonic()
                    backoff = 0.05
            except RETRYABLE as exc:
                raise_if_cancelling()
                log.warning("stats.redis_unavailable", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream or the group vanished (a Redis without persistence
                # restarted): create them again and carry on.

    async def read_once(self) -> int:
        """Read and count the next new entries (waiting up to ``block_ms``); how many."""
        reply: Any = await self.redis.xreadgroup(
            ev.GROUP, self.name, {keys.EVENTS: ">"}, count=self.batch, block=self.block_ms
        )
        handled = 0
        for _, entries in reply or ():
            for entry_id, fields in entries:
                await self.handle(text(entry_id), fields)
                handled += 1
        await self._ack_worthless()
        return handled

    async def claim_stale(self) -> int:
        """Take over entries another consumer read but left unacknowledged for
        ``claim_idle_seconds`` (it died or stalled), and count them; how many."""
        self._claimed_at = time.monotonic()
        start, handled = "0-0", 0
        while True:
            reply: Any = await self.redis.xautoclaim(
                keys.EVENTS,
                ev.GROUP,
                self.name,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.batch,
            )
            start, entries = text(reply[0]), reply[1]
            for entry_id, fields in entries:
                await self.handle(text(entry_id), fields)
                handled += 1
            await self._ack_worthless()
            if start == "0-0":
                return handled

    async def handle(self, entry_id: str, fields: dict[bytes, bytes] | None) -> bool:
        """Count one entry and acknowledge it; True if it was counted now.

        A malformed entry is acknowledged without counting (and logged): no retry can
        fix it. A failure that is not Redis being away is retried ``max_failures``
        times, then the entry is acknowledged uncounted, so one bad entry cannot hold
        the statistics back.
        """
        failures = 0
        while True:
            try:
                return await self._handle(entry_id, fields)
            except (*RETRYABLE, asyncio.CancelledError):
                raise
            except ev.Malformed as exc:
                log.warning("stats.malformed_event", entry=entry_id, error=str(exc))
                self.metrics.stats_skipped.labels("malformed").inc()
                await self._ack(entry_id)
                return False
            except Exception:
                raise_if_cancelling()
                failures += 1
                log.exception("stats.event_failed", entry=entry_id, attempt=failures)
                if failures >= self.max_failures:
                    self.metrics.stats_skipped.labels("failed").inc()
                    await self._ack(entry_id)
                    return False
                await asyncio.sleep(0.1 * failures)

    async def _handle(self, entry_id: str, fields: dict[bytes, bytes] | None) -> bool:
        if not fields:  # trimmed from the stream while pending: nothing left to count
            self._worthless.append(entry_id)
            return False
        event = ev.parse(entry_id, fields)
        resolution = await self._resolution(event) if ev.is_resolution(event) else None
        counters = ev.increments(event, resolution)
        if not counters:
            self._worthless.append(entry_id)
            return False
        day = ev.local_day(event.at, self.settings.zone)
        pairs = [str(v) for item in counters.items() for v in item]
        fresh = bool(
            await batched(
                self._count,
                keys=[ev.day_key(day), ev.seen_key(day), keys.EVENTS],
                args=[
                    ev.GROUP,
                    entry_id,
                    ev.DAY_TTL_SECONDS,
                    ev.SEEN_TTL_SECONDS,
                    *pairs,
                ],
            )
        )
        if fresh:
            await self._observe(event, resolution)
        return fresh

    async def _ack(self, entry_id: str) -> None:
        await self.redis.xack(keys.EVENTS, ev.GROUP, entry_id)

    async def _ack_worthless(self) -> None:
        if self._worthless:
            await self.redis.xack(keys.EVENTS, ev.GROUP, *self._worthless)
            self._worthless.clear()

    async def _observe(self, event: ev.Event, resolution: int | None) -> None:
        """The Prometheus side of a counted event (per account)."""
        waited = ev.first_response(event)
        rated = ev.rating(event)
        if waited is None and resolution is None and rated is None:
            return
        account = await self._account(event.contact)
        if waited is not None:
            self.metrics.first_response.labels(account).observe(waited)
        if resolution is not None:
            self.metrics.resolution.labels(account).observe(resolution)
        if rated is not None:
            self.metrics.ratings.labels(account, rated).inc()

    async def _account(self, contact_id: str) -> str:
        """The account the customer writes from (the latest one; "" if unknown)."""
        reply, first = await self.redis.hmget(
            keys.contact(contact_id), ["reply_account", "account"]
        )
        found = reply if reply is not None else first
        return text(found) if found is not None else ""

    async def _resolution(self, event: ev.Event) -> int | None:
        """Seconds from the closed task's opening to ``event`` (``None``: not found)."""
        opened = await self._opened_at(event.contact, event.process, event.task)
        if opened is None:
            log.info("stats.task_not_found", contact_id=event.contact, process=event.process)
            return None
        return max(0, round((event.at - opened).total_seconds()))

    async def _opened_at(self, contact_id: str, number: str, task: int) -> datetime | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.process(contact_id))
            pipe.lrange(keys.process_archive(contact_id), 0, ARCHIVE_SEARCHED - 1)
            current, archived = await pipe.execute()
        for raw in [current, *archived]:
            if raw is None:
                continue
            process = PROCESS.validate_json(raw)
            if process.number == number:
                return next((t.opened_at for t in process.tasks if t.number == task), None)
        return None
