"""Platform payload → normalised events in the inbound stream (webhooks and pollers).

Only this is done before answering the platform: parse, then a durable append.
Everything else happens in workers, so webhooks answer fast and Telegram never times out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic_core import PydanticSerializationError

from adapters.base import Adapter
from gateway.bus import RELEASE_LEASE, Bus
from gateway.errors import BadPayload, PermanentError, TransientError
from gateway.lifecycle import raise_if_cancelling
from gateway.metrics import Metrics
from gateway.pipeline import routing_key
from gateway.store import keys
from gateway.store.redis import RETRYABLE

log = structlog.get_logger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


class Ingest:
    def __init__(
        self, bus: Bus, metrics: Metrics, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.bus = bus
        self.metrics = metrics
        self.clock = clock or (lambda: datetime.now(UTC))

    async def accept(self, adapter: Adapter, payload: Mapping[str, Any]) -> int:
        """Parse and durably enqueue; returns how many new events were stored.

        Raises ``BadPayload`` (nothing stored) or a Redis error (answer 5xx: retry).
        """
        try:
            events = adapter.parse(payload, self.clock())
        except BadPayload:
            self.metrics.inbound.labels(adapter.channel.value, adapter.account, "rejected").inc()
            raise
        if not events:
            self.metrics.inbound.labels(adapter.channel.value, adapter.account, "ignored").inc()
            return 0
        # Every event is encoded before any is stored: an event that cannot be stored
        # (text that is not valid Unicode, such as a lone surrogate escape) rejects the
        # whole payload, rather than storing part of it.
        named = await adapter.enrich(events)
        try:
            encoded = [(routing_key(m), m.key, m.model_dump_json()) for m in named]
        except PydanticSerializationError as exc:  # a UnicodeEncodeError inside
            self.metrics.inbound.labels(adapter.channel.value, adapter.account, "rejected").inc()
            raise BadPayload(adapter.channel, f"an event cannot be stored: {exc}") from exc
        stored = 0
        for route, event_key, payload_json in encoded:
            added = await self.bus.publish_once(keys.INBOUND, route, event_key, payload_json)
            result = "accepted" if added else "duplicate"
            self.metrics.inbound.labels(adapter.channel.value, adapter.account, result).inc()
            stored += added
        return stored


class Poller:
    """Long-polls one account; only the replica holding the account's lease polls.

    The platform's cursor advances only after the batch is durably stored, so a crash
    re-fetches the batch, and the inbound dedup makes that harmless.
    """

    def __init__(
        self,
        adapter: Adapter,
        ingest: Ingest,
        *,
        name: str,
        lease_seconds: float,
        timeout: float = 25,
    ) -> None:
        self.adapter = adapter
        self.ingest = ingest
        self.redis = ingest.bus.redis
        self.name = name
        self.lease_ms = int(lease_seconds * 1000)
        self.timeout = timeout
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(RELEASE_LEASE)
        self.alive_at = 0.0

    async def run(self) -> None:
        lease = keys.lease(f"poll:{self.adapter.account}")
        saved = keys.poll_cursor(self.adapter.account)
        cursor: int | None = None
        resumed = False
        backoff = 0.5
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    held = await self._renew(keys=[lease], args=[self.name, self.lease_ms])
                    self.alive_at = loop.time()  # alive (readiness), polling or standing by
                    if not held:
                        resumed = False  # another replica polls: re-read when it is ours
                        await asyncio.sleep(self.lease_ms / 3000)  # another replica polls
                        continue
                    if not resumed:  # where this or another replica stopped
                        stored_at = await self.redis.get(saved)
                        cursor = int(stored_at) if stored_at is not None else None
                        resumed = True
                    # Poll for less than the lease lasts, so it is renewed in time.
                    # (at least 1 s: the Bot API takes whole seconds, and 0 would spin)
                    wait = max(1.0, min(self.timeout, self.lease_ms / 2000))
                    batch = await self.adapter.poll(cursor, wait)
                    for update in batch.updates:
                        try:
                            await self.ingest.accept(self.adapter, update)
                        except BadPayload as exc:
                            log.warning(
                                "poll.bad_update", account=self.adapter.account, error=str(exc)
                            )
                    if batch.cursor is not None and batch.cursor != cursor:
                        await self.redis.set(saved, batch.cursor)
                    cursor = batch.cursor
                    backoff = 0.5
                except (TransientError, *RETRYABLE) as exc:
                    raise_if_cancelling()
                    adapter = self.adapter
                    self.ingest.metrics.poll_retries.labels(
                        adapter.channel.value, adapter.account
                    ).inc()
                    log.warning(
                        "poll.retry", account=adapter.account, error=str(exc), retry_in=backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                except PermanentError as exc:
                    raise_if_cancelling()
                    log.error("poll.failed", account=self.adapter.account, error=str(exc))
                    await asyncio.sleep(60)
        finally:
            with contextlib.suppress(*RETRYABLE):
                await self._release(keys=[lease], args=[self.name])
