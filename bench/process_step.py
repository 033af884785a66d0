"""Cost of the worker's business-process step, measured side by side in one run.

    python -m bench.process_step [--messages 3000] [--contacts 300]

Feeds real inbound entries (published, then read through the consumer group as the
worker does) to the real inbound handler (contact → business-process rule → staff job,
acked in one transaction) against a real redis-server, on one core, and reports:

- Redis round trips per inbound message (counted at the connection: one packed send is
  one round trip), for a contact's first message of the day and for later ones;
- messages/s of the handler vs a bare loop doing the same number of PING round trips
  per message on the same connection, as a ratio (how much the Python around the round
  trips costs).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio.connection import AbstractConnection

from bench._common import free_port
from gateway import logging as gateway_logging
from gateway.bus import Bus, Entry
from gateway.config import parse_config
from gateway.contacts import Contacts
from gateway.model import (
    AccountId,
    Channel,
    ChatId,
    Content,
    InboundMessage,
    Kind,
    MessageId,
    PlatformUserId,
    Sender,
)
from gateway.pipeline import Pipeline, routing_key
from gateway.store import keys
from gateway.store.lines import Lines
from gateway.store.processes import ProcessStore
from gateway.store.redis import EmbeddedRedis, close, connect

CONFIG = {
    "staff": {"token": "1:staff", "chat_id": -100123},
    "channels": [{"id": "tg", "kind": "telegram", "token": "2:shop"}],
    "bus": {"partitions": 1},
}


class RoundTrips:
    """Counts packed sends on every connection while active."""

    def __init__(self) -> None:
        self.count = 0
        self._original: Any = None

    def __enter__(self) -> RoundTrips:
        original = AbstractConnection.send_packed_command
        self._original = original

        async def counting(conn: AbstractConnection, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            await original(conn, *args, **kwargs)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


def message(i: int, contact: int) -> InboundMessage:
    now = datetime.now(UTC)
    sender = Sender(
        account=AccountId("tg"),
        channel=Channel.TELEGRAM,
        user_id=PlatformUserId(str(contact)),
        chat_id=ChatId(str(contact)),
        display_name=f"Customer {contact}",
    )
    return InboundMessage(
        key=f"tg:2:{contact}:{i}",
        sender=sender,
        message_id=MessageId(str(i)),
        sent_at=now,
        received_at=now,
        content=Content(kind=Kind.TEXT, text=f"message {i}"),
    )


async def run(messages: int, contacts: int) -> dict[str, float]:
    gateway_logging.configure("warning", "console")  # per-message info lines would dominate
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), port=free_port())
        server.start()
        await server.wait_ready()
        redis = connect(server.url)
        try:
            settings = parse_config(yaml.safe_dump(CONFIG))
            bus = Bus(redis, partitions=1, dedup_ttl_seconds=86400)
            await bus.ensure_groups(keys.INBOUND)
            store = ProcessStore(redis, settings)
            pipeline = Pipeline(settings, bus, Contacts(redis), Lines(redis, settings), store)
            for i in range(messages + 1):
                m = message(i, i % contacts)
                await bus.publish_once(keys.INBOUND, routing_key(m), m.key, m.model_dump_json())
            stream = keys.stream(keys.INBOUND, 0)
            reply = await redis.xreadgroup(keys.GROUP, "bench", {stream: ">"}, count=messages)
            entries = [Entry(stream, e[0].decode(), e[1][b"e"]) for e in reply[0][1]]

            # Warm-up (not counted): the first call of each script loads it (NOSCRIPT).
            await pipeline.handle(entries[0])
            entries = entries[1:]
            first, later = [], []
            start = time.perf_counter()
            for i, entry in enumerate(entries, start=1):
                with RoundTrips() as trips:
                    await pipeline.handle(entry)
                (first if i < contacts else later).append(trips.count)
            handler_s = time.perf_counter() - start

            per_message = statistics.mean(first + later)
            pings = round(per_message * len(entries))
            start = time.perf_counter()
            for _ in range(pings):
                await redis.ping()
            bare_s = time.perf_counter() - start
        finally:
            await close(redis)
            server.stop()
    return {
        "round_trips_first": statistics.mean(first),
        "round_trips_later": statistics.mean(later) if later else float("nan"),
        "round_trips_mean": per_message,
        "round_trips_max": max(first + later),
        "handler_msgs_per_s": len(entries) / handler_s,
        "bare_msgs_per_s": len(entries) / bare_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--contacts", type=int, default=300)
    args = parser.parse_args()
    r = asyncio.run(run(args.messages, args.contacts))
    ratio = r["handler_msgs_per_s"] / r["bare_msgs_per_s"]
    print(f"bench.process_step — {args.messages} messages from {args.contacts} contacts, one core")
    print(
        f"  Redis round trips per inbound message: first of the day {r['round_trips_first']:.1f}, "
        f"later {r['round_trips_later']:.1f}, mean {r['round_trips_mean']:.2f}"
        f"   target ≤ 3   {'PASS' if r['round_trips_mean'] <= 3 else 'MISS'}"
    )
    print(
        f"  worker path {r['handler_msgs_per_s']:.0f} msg/s vs bare loop with the same round trips "
        f"{r['bare_msgs_per_s']:.0f} msg/s: ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
