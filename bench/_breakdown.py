"""The per-update cost of each step of the gateway's webhook, one step at a time.

Run in a process of its own (forked like the servers, see :mod:`bench._server`) so that
nothing else shares its CPU or event loop: for every step, ``n`` updates are processed
back to back and the CPU time (``process_time``) and wall time per update are reported.
Redis steps are measured sequentially (one round trip at a time, as a lone request sees
it) and with 64 in flight (as under load, where event-loop wake-ups are shared).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
import yaml
from aiogram.types import Update

from adapters.telegram import TelegramAdapter
from bench._common import (
    ACCOUNT,
    PARTITIONS,
    SECRET_HEADER,
    UNUSED_API,
    WEBHOOK_SECRET,
    UpdateFactory,
    gateway_config,
)
from gateway.bus import Bus
from gateway.config import parse_config
from gateway.ingest import Ingest
from gateway.metrics import Metrics
from gateway.store import keys
from gateway.store.redis import connect

CONCURRENCY = 64


async def measure(redis_url: str, n: int) -> list[dict[str, Any]]:
    """``[{"name", "cpu_us", "wall_us"}, …]`` per update, in webhook order."""
    with tempfile.TemporaryDirectory() as tmp:
        config = gateway_config(redis_url, UNUSED_API, Path(tmp))
    settings = parse_config(yaml.safe_dump(config))
    adapter = TelegramAdapter(ACCOUNT, settings.channels[0], settings.delivery)
    factory = UpdateFactory(seed=3)
    bodies = [factory() for _ in range(n)]
    headers = {SECRET_HEADER: WEBHOOK_SECRET}
    payloads = [json.loads(b) for b in bodies]
    now = datetime.now(UTC)
    messages = [adapter.parse(p, now)[0] for p in payloads]
    dumped = [m.model_dump_json() for m in messages]
    metrics = Metrics()
    steps: list[dict[str, Any]] = []

    def record(name: str, cpu: float, wall: float) -> None:
        steps.append({"name": name, "cpu_us": 1e6 * cpu / n, "wall_us": 1e6 * wall / n})

    def timed(name: str, fn: Callable[[int], object]) -> None:
        for i in range(min(n, 50)):  # warm caches
            fn(i)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i)
        record(name, time.process_time() - cpu, time.perf_counter() - wall)

    def bind_context(_: int) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(channel="telegram", account=ACCOUNT)

    timed("structlog contextvars clear+bind", bind_context)
    timed("adapter.verify (secret header)", lambda i: adapter.verify(headers, bodies[i]))
    timed("json.loads(body)", lambda i: json.loads(bodies[i]))
    timed("aiogram Update.model_validate", lambda i: Update.model_validate(payloads[i]))
    timed("adapter.parse (text fast path)", lambda i: adapter.parse(payloads[i], now))
    timed("InboundMessage.model_dump_json", lambda i: messages[i].model_dump_json())
    timed(
        "prometheus counter labels().inc()",
        lambda _: metrics.inbound.labels("telegram", ACCOUNT, "accepted").inc(),
    )

    redis = connect(redis_url)
    try:
        await redis.flushall()
        bus = Bus(redis, partitions=PARTITIONS, dedup_ttl_seconds=8 * 86400)
        ingest = Ingest(bus, metrics)

        async def timed_async(
            name: str, fn: Callable[[int], Awaitable[object]], concurrency: int = 1
        ) -> None:
            async def run(first: int, step: int) -> None:
                for i in range(first, n, step):
                    await fn(i)

            await asyncio.gather(*(fn(i) for i in range(min(n, concurrency, 50))))  # warm
            await redis.flushall()
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(run(k, concurrency) for k in range(concurrency)))
            record(name, time.process_time() - cpu, time.perf_counter() - wall)

        def publish(i: int) -> Awaitable[bool]:
            return bus.publish_once(keys.INBOUND, f"{ACCOUNT}:{i}", f"bench:{i}", dumped[i])

        await timed_async("redis PING round trip (reference)", lambda _: redis.ping())
        await timed_async("bus.publish_once (EVALSHA SET NX + XADD)", publish)
        await timed_async(
            "ingest.accept (parse + dump + publish + metric)",
            lambda i: ingest.accept(adapter, payloads[i]),
        )
        c = CONCURRENCY
        await timed_async(f"redis PING, {c} in flight", lambda _: redis.ping(), c)
        await timed_async(f"bus.publish_once, {c} in flight", publish, c)
        await timed_async(
            f"ingest.accept, {c} in flight", lambda i: ingest.accept(adapter, payloads[i]), c
        )
        await redis.flushall()
    finally:
        await redis.aclose()
        await adapter.stop()
    return steps
