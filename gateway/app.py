"""The running gateway: one object that owns every connection and background task.

Start order: Redis (embedded if no URL) → adapters → consumer groups; then, once the
HTTP server listens, :meth:`App.go_live` registers webhooks and starts the pollers and
workers (platform calls may need the server, e.g. the sandbox's emulator on the same
port). Stop order is the reverse; every background task is owned and cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import structlog

import adapters
from adapters.base import Adapter, StaffAdapter
from gateway.bus import Bus, consumer_name
from gateway.consumer import Consumer
from gateway.config import STAFF_ACCOUNT, Settings
from gateway.contacts import Contacts
from gateway.delivery import Delivery
from gateway.errors import GatewayError
from gateway.ingest import Ingest, Poller
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.ratelimit import Limiter
from gateway.scheduler import Scheduler
from gateway.store import keys
from gateway.store.processes import ProcessStore
from gateway.store.redis import EmbeddedRedis, Redis, close, connect
from gateway.store.topics import Topics

log = structlog.get_logger(__name__)


def build_adapters(settings: Settings) -> tuple[StaffAdapter, dict[str, Adapter]]:
    staff = adapters.create_staff(STAFF_ACCOUNT, settings.staff, settings.delivery)
    customers = {c.id: adapters.create(c.id, c, settings.delivery) for c in settings.channels}
    return staff, customers


class App:
    def __init__(
        self, settings: Settings, *, workers: bool = True, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or _utc_now
        self.run_workers = workers
        self.metrics = Metrics()
        self.name = consumer_name()
        self.embedded: EmbeddedRedis | None = None
        self.redis: Redis | None = None
        self.staff, self.customers = build_adapters(settings)
        self.relays = adapters.create_relays(STAFF_ACCOUNT, settings.staff, settings.delivery)
        self.consumers: list[Consumer] = []
        self.pollers: list[Poller] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = time.monotonic()
        self.live = False
        """Set once :meth:`go_live` registered webhooks and started pollers and workers."""

    @property
    def adapters(self) -> Mapping[str, Adapter]:
        """Every account that can receive webhooks, the staff bot included."""
        return {STAFF_ACCOUNT: self.staff, **self.customers}

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # never leave an embedded Redis behind a failed start
            raise

    async def _start(self) -> None:
        settings = self.settings
        url = settings.redis.url
        if url is None:
            self.embedded = EmbeddedRedis(
                settings.data_dir / "redis", appendfsync=settings.redis.embedded.appendfsync
            )
            self.embedded.start()
            await self.embedded.wait_ready()
            url = self.embedded.url
        self.redis = connect(url)
        await self.redis.ping()
        self.bus = Bus(
            self.redis,
            partitions=settings.bus.partitions,
            dedup_ttl_seconds=settings.bus.dedup_ttl_days * 86400,
        )
        for family in keys.FAMILIES:
            await self.bus.ensure_groups(family)
        self.ingest = Ingest(self.bus, self.metrics, clock=self.clock)
        contacts = Contacts(self.redis, join_by_phone=settings.dedup.auto_merge == "exact")
        topics = Topics(self.redis, settings.staff.chat_id)
        self.processes = ProcessStore(
            self.redis, settings, card_stream=lambda cid: self.bus.stream(keys.STAFF_OUT, cid)
        )
        self.pipeline = Pipeline(settings, self.bus, contacts, topics, self.processes)
        self.scheduler = Scheduler(
            self.redis,
            {
                keys.AUTO_CLOSE: self.pipeline.timers.auto_close,
                keys.REMIND: self.pipeline.timers.remind,
                keys.TAKE: self.pipeline.watch.take_timeout,
                keys.IDLE: self.pipeline.watch.idle,
            },
            clock=self.clock,
        )
        self.delivery = Delivery(
            settings,
            self.bus,
            self.customers,
            self.staff,
            contacts,
            topics,
            Limiter(self.redis, enabled=settings.delivery.flood_limits),
            self.metrics,
            self.processes,
            self.clock,
            self.relays,
        )
        log.info("gateway.started", accounts=sorted(self.adapters), redis=_safe_url(url))

    async def go_live(self, public_url: str | None = None) -> None:
        """Register webhooks, start pollers and workers (the HTTP server is listening)."""
        lease = self.settings.bus.lease_seconds
        public = public_url or (str(self.settings.server.public_url or "") or None)
        if public is not None:
            self.delivery.media.public_url = public.rstrip("/")
        for account, adapter in self.adapters.items():
            endpoint = (
                self.settings.staff if account == STAFF_ACCOUNT else self.settings.channel(account)
            )
            await adapter.start()
            if endpoint is not None and endpoint.mode == "polling":
                poller = Poller(adapter, self.ingest, name=self.name, lease_seconds=lease)
                self.pollers.append(poller)
                self._spawn(poller.run())
            elif public is not None:
                url = f"{public.rstrip('/')}/webhook/{adapter.channel.value}/{account}"
                await adapter.set_webhook(url)
        try:
            self.pipeline.desk.bot_username = await self.staff.username()
        except GatewayError as exc:  # commands still work; /x@other_bot counts as ours
            log.warning("gateway.staff_bot_unidentified", error=str(exc))
        if self.run_workers:
            handlers = (
                (keys.INBOUND, self.pipeline.handle),
                (keys.STAFF_OUT, self.delivery.handle_staff),
                (keys.CUSTOMER_OUT, self.delivery.handle_customer),
            )
            for family, handler in handlers:
                consumer = Consumer(self.bus, family, handler, name=self.name, lease_seconds=lease)
                self.consumers.append(consumer)
                self._spawn(consumer.run())
            self._spawn(self.scheduler.run())
        self.live = True

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        pending = set(self._tasks)
        for _ in range(3):  # a task may still swallow one cancellation: ask again
            if not pending:
                break
            _, pending = await asyncio.wait(pending, timeout=5)
            for task in pending:
                task.cancel()
        for task in pending:
            log.error("gateway.task_did_not_stop", task=task.get_name())
        self._tasks.clear()
        for adapter in [*self.adapters.values(), *self.relays]:
            with contextlib.suppress(Exception):
                await adapter.stop()
        if self.redis is not None:
            await close(self.redis)
        if self.embedded is not None:
            self.embedded.stop()
        log.info("gateway.stopped")

    async def ready(self) -> dict[str, bool]:
        """Readiness: Redis answers, and every background loop ran recently."""
        # Not ready before go_live: a VK callback server, say, is not confirmed yet.
        checks = {"live": self.live, "redis": False, "workers": True, "pollers": True}
        try:
            checks["redis"] = bool(self.redis is not None and await self.redis.ping())
        except Exception:
            checks["redis"] = False
        now = time.monotonic()
        grace = max(2 * self.settings.bus.lease_seconds, 30.0)
        if now - self.started_at > grace:
            checks["workers"] = all(now - c.alive_at < grace for c in self.consumers)
            loop_now = asyncio.get_running_loop().time()
            checks["pollers"] = all(loop_now - p.alive_at < grace + 30 for p in self.pollers)
        return checks


Clock = Callable[[], datetime]
"""The time source; tests and the simulator pass a controllable one."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def freeze_startup_heap() -> None:
    """Move everything allocated so far out of the garbage collector's sight.

    aiogram and pydantic leave ~200k long-lived objects behind at import; every full
    collection walked them all, stopping the loop for 200-300 ms every few seconds under
    load (measured by bench/ingest.py: p99 166 ms → 15 ms with this). They live as long
    as the process, so freezing them loses nothing.
    """
    gc.collect()
    gc.freeze()


def _safe_url(url: str) -> str:
    """A Redis URL without its password, for logs."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
