"""Delivering one target's queues: claim due contacts, POST their heads in order.

Each replica runs one of these per target. It claims up to ``parallel`` due contacts
at a time and works on each in a task of its own: POST the head; delivered → pop it and
go on with the next; refused for good → dead-letter it and go on; failed for now →
schedule the next attempt (backoff, ``Retry-After``) and let the contact go, so the
worker serves other contacts meanwhile. Past the target's ``retry_for_hours`` the
head is dead-lettered instead, and the contact's next delivery goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import time
from collections.abc import Callable

import aiohttp
import structlog
from pydantic import ValidationError

from gateway.config import WebhookTarget
from gateway.integrations.dead import dead_letter
from gateway.integrations.payload import Delivery
from gateway.integrations.queue import Queues, Tries
from gateway.integrations.sender import Attempt, RetryPolicy, post, sleep_or
from gateway.integrations.stats import Stats
from gateway.lifecycle import raise_if_cancelling
from gateway.store.redis import RETRYABLE

log = structlog.get_logger(__name__)


class TargetWorker:
    def __init__(
        self,
        target: WebhookTarget,
        queues: Queues,
        stats: Stats,
        *,
        name: str,
        http: Callable[[], aiohttp.ClientSession],
        policy: Callable[[], RetryPolicy],
        claim_margin_seconds: float,
        parallel: int = 16,
        idle_poll_seconds: float = 0.5,
    ) -> None:
        self.target = target
        self.queues = queues
        self.stats = stats
        self.name = name
        self.http = http
        self.policy = policy
        """Read at every failure, so a change applies to the next wait."""
        self.hold_ms = int((target.timeout_seconds + claim_margin_seconds) * 1000)
        """How long a claim lasts: one attempt plus a margin. A dead worker's contacts
        are taken over after at most this."""
        self.window_ms = int(target.retry_for_hours * 3600 * 1000)
        self.parallel = parallel
        self.idle_poll = idle_poll_seconds
        self.wake = asyncio.Event()
        self.alive_at = 0.0
        self._tokens = itertools.count(1)
        self._working: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        backoff = 0.05
        try:
            while True:
                try:
                    await self._tick()
                    self.alive_at = time.monotonic()
                    backoff = 0.05
                except RETRYABLE as exc:
                    raise_if_cancelling()
                    log.warning("webhooks.redis_unavailable", target=self.target.id, error=str(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            working = list(self._working.values())
            for task in working:
                task.cancel()
            if working:
                await asyncio.wait(working, timeout=5)

    async def _tick(self) -> None:
        room = self.parallel - len(self._working)
        wait = self.idle_poll
        self.wake.clear()  # set again by new deliveries and by a contact finished
        if room > 0:
            token = f"{self.name}:{next(self._tokens)}"
            now_ms = _now_ms()
            claimed, first = await self.queues.claim(
                self.target.id, token, now_ms, now_ms + self.hold_ms, room
            )
            for contact in claimed:
                running = self._working.get(contact)
                if running is not None and not running.done():
                    continue  # our own claim lapsed (a stall): that task stops at its next write
                task = asyncio.create_task(self._serve(contact, token))
                self._working[contact] = task
                task.add_done_callback(functools.partial(self._done, contact))
            if len(claimed) == room:
                return  # there may be more due: look again at once
            if first is not None:
                wait = min(wait, max(0.0, (first - now_ms) / 1000))
        await sleep_or(self.wake, wait)

    def _done(self, contact: str, _: asyncio.Task[None]) -> None:
        self._working.pop(contact, None)
        self.wake.set()

    async def _serve(self, contact: str, token: str) -> None:
        """Deliver the contact's queue in order until it is empty or must wait."""
        try:
            await self._deliver(contact, token)
        except asyncio.CancelledError:
            # Stopping: give the contact back at once (another replica may take it)
            # rather than when the claim runs out.
            with contextlib.suppress(*RETRYABLE, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(self.queues.release(self.target.id, contact, token, 0)), 2
                )
            raise
        except RETRYABLE as exc:
            raise_if_cancelling()
            # The claim runs out by itself and the contact is tried again then.
            log.warning("webhooks.redis_unavailable", target=self.target.id, error=str(exc))
        except Exception:
            raise_if_cancelling()
            log.exception("webhooks.worker_failed", target=self.target.id, contact=contact)

    async def _deliver(self, contact: str, token: str) -> None:
        target = self.target.id
        where = (target, contact)
        head = await self.queues.head(target, contact)
        while True:
            if head is None:
                await self.queues.release(target, contact, token, _now_ms())
                return
            raw, tries = head
            try:
                delivery = Delivery.model_validate_json(raw)
            except ValidationError as exc:
                # Not something this version can read: park it, visibly, rather than
                # retry it forever in front of the contact's other deliveries.
                log.error("webhooks.unreadable_delivery", target=target, error=str(exc))
                now_ms = _now_ms()
                bad = tries.failed(now_ms, f"unreadable delivery: {exc}"[:300])
                record = dead_letter(raw, None, where, bad, now_ms)
                dead_id = json.loads(record)["id"]
                left, head = await self.queues.pop(
                    target, contact, token, raw, dead_id, now_ms + self.hold_ms, record
                )
                self.stats.dead(target)
                if left <= 0:
                    return
                continue
            attempt = await post(self.http(), self.target, delivery)
            now_ms = _now_ms()
            if attempt.result == "delivered":
                left, head = await self.queues.pop(
                    target, contact, token, raw, delivery.id, now_ms + self.hold_ms
                )
                self.stats.delivered(target, (now_ms - delivery.recorded_ms) / 1000)
                log.debug("webhooks.delivered", target=target, delivery=delivery.id)
            else:
                failed = tries.failed(now_ms, attempt.error)
                when = self._next_attempt(attempt, failed, now_ms)
                if when is not None:
                    self.stats.retried(target, attempt.reason)
                    log.info(
                        "webhooks.retry",
                        target=target,
                        delivery=delivery.id,
                        error=attempt.error,
                        attempt=failed.attempts,
                        retry_in=round((when - now_ms) / 1000, 3),
                    )
                    await self.queues.later(target, contact, token, delivery.id, failed, when)
                    return
                record = dead_letter(raw, delivery, where, failed, now_ms)
                left, head = await self.queues.pop(
                    target, contact, token, raw, delivery.id, now_ms + self.hold_ms, record
                )
                self.stats.dead(target)
                log.error(
                    "webhooks.dead_lettered",
                    target=target,
                    delivery=delivery.id,
                    error=attempt.error,
                    attempts=failed.attempts,
                )
            if left <= 0:
                return  # all delivered, or the claim was lost to another worker

    def _next_attempt(self, attempt: Attempt, tries: Tries, now_ms: int) -> int | None:
        """When to try again (epoch ms), or None: dead-letter now.

        The last attempt is made at the end of the retry window rather than skipped;
        a ``Retry-After`` that points past the window ends it now.
        """
        if attempt.result == "failed":
            return None
        deadline = tries.since_ms + self.window_ms
        if now_ms >= deadline:
            return None
        backoff = self.policy().wait(tries.attempts)
        asked = attempt.retry_after or 0.0
        when = now_ms + int(max(backoff, asked) * 1000)
        if when <= deadline:
            return when
        return None if now_ms + asked * 1000 > deadline else deadline


def _now_ms() -> int:
    return int(time.time() * 1000)
