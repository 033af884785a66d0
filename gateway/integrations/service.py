"""The CRM webhooks as one component of the gateway: the fan-out, a worker per target,
the HTTP client they share, the metrics, and the dead letters' API.

The App constructs it (:meth:`Webhooks.prepare` creates the consumer group, so events
recorded from then on are kept for the targets even before any worker runs), and, in
replicas that run workers, spawns :meth:`Webhooks.run`, which owns everything it starts:
cancelling it stops the loops, gives claimed contacts back and closes the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from gateway.config import Settings, WebhookTarget
from gateway.integrations import dead
from gateway.integrations.fanout import FanOut
from gateway.integrations.payload import USER_AGENT
from gateway.integrations.queue import Queues
from gateway.integrations.sender import RetryPolicy
from gateway.integrations.stats import Stats
from gateway.integrations.worker import TargetWorker
from gateway.lifecycle import raise_if_cancelling
from gateway.store.redis import RETRYABLE, Redis

log = structlog.get_logger(__name__)
GAUGES_EVERY = 5.0
"""Seconds between refreshes of the backlog and dead-letter gauges."""


class Webhooks:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        name: str,
        registry: CollectorRegistry | None = None,
        policy: RetryPolicy | None = None,
        parallel: int = 16,
    ) -> None:
        self.redis = redis
        self.targets: tuple[WebhookTarget, ...] = settings.integrations.webhooks
        self.policy = policy or RetryPolicy()
        """The backoff between attempts; read at every failure (tests shorten it)."""
        self.stats = Stats.of(registry)
        self.queues = Queues(redis)
        self._http: aiohttp.ClientSession | None = None
        lease = settings.bus.lease_seconds
        self.workers = {
            t.id: TargetWorker(
                t,
                self.queues,
                self.stats,
                name=name,
                http=self._client,
                policy=lambda: self.policy,
                claim_margin_seconds=lease,
                parallel=parallel,
            )
            for t in self.targets
        }
        self.fanout = FanOut(
            redis, self.targets, self.queues, name=name, lease_seconds=lease, wake=self._wake
        )

    async def prepare(self) -> None:
        """Create the events stream's consumer group (only when targets are set)."""
        if self.targets:
            await self.fanout.prepare()

    async def run(self) -> None:
        """Fan out and deliver until cancelled (returns at once without targets)."""
        if not self.targets:
            return
        self._http = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT},
            connector=aiohttp.TCPConnector(limit=100, limit_per_host=32),
        )
        log.info("webhooks.started", targets=[t.id for t in self.targets])
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_forever("fanout", self.fanout.run))
                for target, worker in self.workers.items():
                    group.create_task(_forever(f"deliver:{target}", worker.run))
                group.create_task(_forever("gauges", self._gauges))
        finally:
            http, self._http = self._http, None
            await http.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("the webhooks are not running")
        return self._http

    def _wake(self, target: str) -> None:
        worker = self.workers.get(target)
        if worker is not None:
            worker.wake.set()

    def alive(self, grace: float) -> bool:
        """Every loop went round within ``grace`` seconds (for readiness)."""
        if not self.targets:
            return True
        now = time.monotonic()
        loops = [self.fanout.alive_at, *(w.alive_at for w in self.workers.values())]
        return all(now - at < grace for at in loops)

    async def _gauges(self) -> None:
        while True:
            try:
                for target in self.targets:
                    self.stats.backlog.labels(target.id).set(await self.queues.backlog(target.id))
                    self.stats.dead_letters.labels(target.id).set(
                        await dead.count(self.redis, target.id)
                    )
            except RETRYABLE as exc:
                raise_if_cancelling()
                log.warning("webhooks.redis_unavailable", error=str(exc))
            await asyncio.sleep(GAUGES_EVERY)

    # The dead letters (the HTTP API exposes these) -----------------------------------

    async def list_dead(
        self, target: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dead.DeadPage:
        return await dead.list_dead(self.redis, target, limit, cursor)

    async def replay(
        self, ids: Sequence[str] | None = None, *, target: str | None = None
    ) -> dead.Moved:
        moved = await dead.replay(self.redis, {t.id for t in self.targets}, ids, target=target)
        for replayed in {i.split(":", 1)[0] for i in moved.done}:
            self._wake(replayed)
        log.info("webhooks.replayed", replayed=len(moved.done), missing=len(moved.missing))
        return moved

    async def discard(self, ids: Sequence[str]) -> dead.Moved:
        moved = await dead.discard(self.redis, ids)
        log.info("webhooks.discarded", discarded=len(moved.done), missing=len(moved.missing))
        return moved

    async def backlog(self) -> dict[str, int]:
        """Deliveries queued per target (waiting, in flight or waiting for a retry)."""
        return {t.id: await self.queues.backlog(t.id) for t in self.targets}


async def _forever(what: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run ``loop`` again after an unexpected error (logged): one loop's bug must not
    stop the others, nor stop this one for good."""
    while True:
        try:
            await loop()
            return
        except Exception:
            raise_if_cancelling()
            log.exception("webhooks.loop_failed", loop=what)
            await asyncio.sleep(1.0)
