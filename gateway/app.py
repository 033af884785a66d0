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
from adapters.webchat import WebchatAdapter
from gateway.admin.stats import StatsConsumer
from gateway.bus import Bus, consumer_name
from gateway.config import STAFF_ACCOUNT, Settings
from gateway.consumer import Consumer
from gateway.contacts import Contacts
from gateway.delivery import Delivery
from gateway.errors import GatewayError
from gateway.ingest import Ingest, Poller
from gateway.integrations import Webhooks
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.ratelimit import Limiter
from gateway.scheduler import Scheduler
from gateway.store import keys
from gateway.store.lines import Lines
from gateway.store.processes import ProcessStore
from gateway.store.redis import EmbeddedRedis, Redis, close, connect
from gateway.webchat.log import VisitorLog

log = structlog.get_logger(__name__)
INBOUND_PARALLEL = 64
"""Routing keys (customer chats, staff topics) of one inbound partition handled at
once by a replica: a burst from many customers shares Redis round trips."""


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
        self._retiring: dict[str, Adapter] = {}
        """Accounts a reload removed, still delivering what was queued for them."""
        self.drain_seconds = 120.0
        self.public_url: str | None = None
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
        self._build(settings)
        await self.webhooks.prepare()
        log.info("gateway.started", accounts=sorted(self.adapters), redis=_safe_url(url))

    def _build(self, settings: Settings) -> None:
        """Everything that follows the config: built at start, rebuilt by
        :meth:`reconfigure`."""
        assert self.redis is not None
        # Delivery sends through the configured accounts and those a reload removed
        # that still drain (:meth:`_retire` takes them out of this very dict).
        self._senders: dict[str, Adapter] = {**self._retiring, **self.customers}
        for adapter in self._senders.values():
            if isinstance(adapter, WebchatAdapter):  # its platform is our Redis
                adapter.attach(VisitorLog(self.redis, adapter.account))
        contacts = Contacts(self.redis, join_by_phone=settings.dedup.auto_merge == "exact")
        lines = Lines(self.redis, settings)
        self.processes = ProcessStore(
            self.redis, settings, card_stream=lambda cid: self.bus.stream(keys.STAFF_OUT, cid)
        )
        self.pipeline = Pipeline(settings, self.bus, contacts, lines, self.processes)
        self.scheduler = Scheduler(
            self.redis,
            {
                keys.AUTO_CLOSE: self.pipeline.timers.auto_close,
                keys.REMIND: self.pipeline.timers.remind,
                keys.TAKE: self.pipeline.watch.take_timeout,
                keys.IDLE: self.pipeline.watch.idle,
                keys.CSAT: self.pipeline.csat.expire,
                keys.FLOOD: self.pipeline.guard.flood_over,
            },
            clock=self.clock,
        )
        self.delivery = Delivery(
            settings,
            self.bus,
            self._senders,
            self.staff,
            contacts,
            lines,
            Limiter(self.redis, enabled=settings.delivery.flood_limits),
            self.metrics,
            self.processes,
            self.clock,
            self.relays,
        )
        self.stats = StatsConsumer(self.redis, settings, self.metrics, name=self.name)
        self.webhooks = Webhooks(
            self.redis, settings, name=self.name, registry=self.metrics.registry
        )

    async def go_live(self, public_url: str | None = None) -> None:
        """Register webhooks, start pollers and workers (the HTTP server is listening)."""
        self.public_url = public_url or (str(self.settings.server.public_url or "") or None)
        for account, adapter in self.adapters.items():
            await adapter.start()
            await self._open(account, adapter, webhook=True)
        await self._go()

    async def _open(self, account: str, adapter: Adapter, *, webhook: bool) -> None:
        """Start taking the account's updates: its poller, or (``webhook``) its webhook."""
        settings = self.settings
        endpoint = settings.staff if account == STAFF_ACCOUNT else settings.channel(account)
        if endpoint is not None and endpoint.mode == "polling":
            lease = settings.bus.lease_seconds
            poller = Poller(adapter, self.ingest, name=self.name, lease_seconds=lease)
            self.pollers.append(poller)
            self._spawn(poller.run())
        elif webhook and self.public_url is not None:
            url = f"{self.public_url.rstrip('/')}/webhook/{adapter.channel.value}/{account}"
            await adapter.set_webhook(url)

    async def _go(self) -> None:
        """Start the workers of the components :meth:`_build` made."""
        if self.public_url is not None:
            self.delivery.media.public_url = self.public_url.rstrip("/")
        try:
            self.pipeline.desk.bot_username = await self.staff.username()
        except GatewayError as exc:  # commands still work; /x@other_bot counts as ours
            log.warning("gateway.staff_bot_unidentified", error=str(exc))
        if self.run_workers:
            lease = self.settings.bus.lease_seconds
            # Inbound handlers only write to Redis, in their own commit: every key of a
            # read batch can go at once. Delivery sends to platforms: how many at once
            # per partition bounds what a crash may send twice (see Consumer).
            sends = self.settings.bus.delivery_parallel
            handlers = (
                (keys.INBOUND, self.pipeline.handle, INBOUND_PARALLEL),
                (keys.STAFF_OUT, self.delivery.handle_staff, sends),
                (keys.CUSTOMER_OUT, self.delivery.handle_customer, sends),
            )
            for family, handler, parallel in handlers:
                consumer = Consumer(
                    self.bus,
                    family,
                    handler,
                    name=self.name,
                    lease_seconds=lease,
                    parallel=parallel,
                )
                self.consumers.append(consumer)
                self._spawn(consumer.run())
            self._spawn(self.scheduler.run())
            self._spawn(self.webhooks.run())
            self._spawn(self.stats.run())
        if self._retiring:
            self._spawn(self._retire(self.drain_seconds))
        self.live = True

    async def reconfigure(self, settings: Settings, *, drain_seconds: float = 120.0) -> None:
        """Apply a new, valid config (see :mod:`gateway.reload`; restart-only settings
        are the caller's to refuse).

        The workers and pollers stop after the entry they are on (a handler's effects
        and its acknowledgement are one transaction), the components are rebuilt, and
        everything starts again; messages wait in Redis meanwhile. Unchanged accounts
        keep their connections; new and changed ones get new adapters; a removed one
        takes no more updates at once but delivers what is queued for it for
        ``drain_seconds`` more."""
        await self._cancel(self._tasks)
        self._tasks.clear()
        self.pollers.clear()
        self.consumers.clear()
        # Adapters are built with the delivery limits (timeouts, rates): new limits, new
        # adapters — the staff bot and its relays too.
        limits = settings.delivery != self.settings.delivery
        kept = {
            account: adapter
            for account, adapter in self.customers.items()
            if not limits and settings.channel(account) == self.settings.channel(account)
        }
        fresh = {
            c.id: adapters.create(c.id, c, settings.delivery)
            for c in settings.channels
            if c.id not in kept
        }
        replaced = [a for i, a in self.customers.items() if i not in kept and settings.channel(i)]
        for account, adapter in self.customers.items():
            if settings.channel(account) is None:
                self._retiring[account] = adapter
        for account in fresh:
            old = self._retiring.pop(account, None)  # removed before, back now
            if old is not None:
                replaced.append(old)
        if limits:
            replaced += [self.staff, *self.relays]
            self.staff = adapters.create_staff(STAFF_ACCOUNT, settings.staff, settings.delivery)
            self.relays = adapters.create_relays(STAFF_ACCOUNT, settings.staff, settings.delivery)
        self.settings = settings
        self.customers = {c.id: kept.get(c.id) or fresh[c.id] for c in settings.channels}
        self.drain_seconds = drain_seconds
        self._build(settings)
        await self.webhooks.prepare()
        for adapter in replaced:
            with contextlib.suppress(Exception):
                await adapter.stop()
        if not self.live:
            return
        for account, adapter in self.adapters.items():
            new = account in fresh or (limits and account == STAFF_ACCOUNT)
            if new:
                await adapter.start()
            await self._open(account, adapter, webhook=new)
        await self._go()

    async def _retire(self, delay: float) -> None:
        """Stop the removed accounts' adapters once their queued jobs had time to go."""
        await asyncio.sleep(delay)
        for account in list(self._retiring):
            adapter = self._retiring.pop(account)
            self._senders.pop(account, None)
            with contextlib.suppress(Exception):
                await adapter.stop()
            log.info("gateway.account_retired", account=account)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.append(task)

    @staticmethod
    async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        pending = set(tasks)
        for _ in range(3):  # a task may still swallow one cancellation: ask again
            if not pending:
                break
            _, pending = await asyncio.wait(pending, timeout=5)
            for task in pending:
                task.cancel()
        for task in pending:
            log.error("gateway.task_did_not_stop", task=task.get_name())

    async def stop(self) -> None:
        await self._cancel(self._tasks)
        self._tasks.clear()
        for adapter in [*self.adapters.values(), *self._retiring.values(), *self.relays]:
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
            if self.run_workers:  # the integrations' loops too (the CRM and the statistics)
                checks["workers"] &= self.webhooks.alive(grace)
                checks["workers"] &= now - self.stats.alive_at < grace
            loop_now = asyncio.get_running_loop().time()
            checks["pollers"] = all(loop_now - p.alive_at < grace + 30 for p in self.pollers)
        return checks


Clock = Callable[[], datetime]
"""The time source; tests and the simulator pass a controllable one."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


GC_YOUNG_THRESHOLD = 50_000
"""Net new container objects between two young-generation collections (Python's
default is 700)."""


def tune_gc() -> None:
    """Set the garbage collector up for serving; called once live.

    - **The start-up heap is frozen.** aiogram and pydantic leave ~200k long-lived
      objects behind at import; every full collection walked them all, stopping the
      loop for 200-300 ms every few seconds under load (measured by bench/ingest.py: p99
      166 ms → 15 ms with this). They live as long as the process, so freezing them
      loses nothing.
    - **Young collections wait for 50,000 new objects, not 700.** Under load hundreds of
      messages are in flight, each holding dozens of live objects, so Python's default
      collected every few messages and found them alive: ~11% of the gateway's CPU in
      bench.pipeline went to the collector (gen-1 passes of ~2 ms each moving in-flight
      state along). Almost everything a message allocates is freed by reference
      counting; only reference cycles wait for a collection, and there are few. With
      this, a run of 4,000 messages sees about one collection (~8 ms), and the gateway
      spends 12-15% less CPU per message. The older generations keep their defaults.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _safe_url(url: str) -> str:
    """A Redis URL without its password, for logs."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
