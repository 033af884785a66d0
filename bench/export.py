"""Speed of ``gateway export`` / ``gateway import``, measured side by side in one run.

    python -m bench.export [--contacts 10000] [--messages 5]

Fills a real redis-server through the gateway's own store code (contacts with the
resolve script, a third with a phone; a topic each; a business process each through
the process step; ``--messages`` history entries each, with message-map links), then:

- **export**: the real exporter, to a file — lines/s and store keys/s — against a bare
  ``SCAN`` + pipelined ``DUMP`` + ``PTTL`` of the same keys (what the export covers),
  in the same run;
- **import**: validation plus the real importer into a second, empty redis-server —
  lines/s and keys/s — against a bare pipelined ``RESTORE`` of those dumps into it.

The ratio is export (import) speed / bare speed: how much the readable, checked,
portable format costs over Redis's own binary copy of the same keys.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench._common import free_port
from gateway import logging as gateway_logging
from gateway import process as bp
from gateway.config import Settings, parse_config
from gateway.contacts import Contacts
from gateway.export import Exporter, validate, write
from gateway.export.families import Fate, fate
from gateway.model import (
    AccountId,
    Channel,
    ChatId,
    Content,
    Kind,
    MessageId,
    PlatformUserId,
    Sender,
    TopicId,
)
from gateway.store import keys
from gateway.store.history import History
from gateway.store.messages import MessageRef, link
from gateway.store.processes import ProcessStore
from gateway.store.redis import EmbeddedRedis, Redis, close, connect
from gateway.store.topics import Topics

STAFF_CHAT = -1005550000001
TEXTS = (
    "Здравствуйте! Заказ ещё не пришёл, подскажите, пожалуйста, где он?",
    "Hello, is the shop open on Sunday?",
    "Можно поменять размер на M? Номер заказа 48213",
    "Do you deliver to Kazan? How much is it and how long does it take?",
    "спасибо 🙏",
)
BATCH = 1000


def settings_for(url: str) -> Settings:
    return parse_config(
        yaml.safe_dump(
            {
                "redis": {"url": url},
                "staff": {"token": "1:staff", "chat_id": STAFF_CHAT},
                "channels": [{"id": "tg_shop", "kind": "telegram", "token": "2:shop"}],
            }
        )
    )


async def populate(redis: Redis, settings: Settings, count: int, messages: int) -> None:
    contacts, topics = Contacts(redis), Topics(redis, STAFF_CHAT)
    processes, history = ProcessStore(redis, settings), History(redis, 365)
    at = datetime.now(UTC)

    async def one(i: int) -> None:
        uid = str(100_000_000 + i)
        sender = Sender(
            account=AccountId("tg_shop"),
            channel=Channel.TELEGRAM,
            user_id=PlatformUserId(uid),
            chat_id=ChatId(uid),
            display_name=f"Customer {i}",
            username=f"customer_{i}",
        )
        phone = f"+7916{i:07d}" if i % 3 == 0 else None
        contact = (await contacts.resolve(sender, at, None, phone=phone)).contact
        await topics.bind(contact.id, TopicId(10 + i))
        step = processes.sla_for("tg_shop")
        await processes.apply(
            contact.id,
            at,
            lambda current, number_for: bp.inbound(
                current, at, zone=settings.zone, sla=step, number_for=number_for
            ),
            may_open=True,
        )
        async with redis.pipeline(transaction=True) as pipe:
            for m in range(messages):
                content = Content(kind=Kind.TEXT, text=TEXTS[(i + m) % len(TEXTS)])
                history.append(
                    pipe,
                    contact.id,
                    direction="in" if m % 2 == 0 else "out",
                    at=at,
                    channel="telegram",
                    account="tg_shop",
                    content=content,
                    message_id=str(m + 1),
                    chat=uid,
                )
                link(
                    pipe,
                    MessageRef(AccountId("tg_shop"), ChatId(uid), MessageId(str(m + 1))),
                    MessageRef(
                        AccountId("staff"), ChatId(str(STAFF_CHAT)), MessageId(str(10_000 * i + m))
                    ),
                    content.text,
                )
            await pipe.execute()

    for start in range(0, count, 64):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 64))))


async def store_keys(redis: Redis) -> list[bytes]:
    """The keys an export covers (exported and derived families)."""
    return [
        key
        async for key in redis.scan_iter(match=f"{keys.PREFIX}:*", count=1000)
        if fate(key.decode()) in (Fate.EXPORTED, Fate.DERIVED)
    ]


async def bare_dump(redis: Redis) -> tuple[float, list[tuple[bytes, int, bytes]]]:
    """SCAN + DUMP + PTTL of every covered key, pipelined: the baseline export."""
    start = time.perf_counter()
    found = await store_keys(redis)
    dumps: list[tuple[bytes, int, bytes]] = []
    for i in range(0, len(found), BATCH):
        page = found[i : i + BATCH]
        async with redis.pipeline(transaction=False) as pipe:
            for key in page:
                pipe.dump(key)
                pipe.pttl(key)
            raw = await pipe.execute()
        dumps += [(k, max(0, raw[2 * j + 1]), raw[2 * j]) for j, k in enumerate(page)]
    return time.perf_counter() - start, dumps


async def bare_restore(redis: Redis, dumps: list[tuple[bytes, int, bytes]]) -> float:
    start = time.perf_counter()
    for i in range(0, len(dumps), BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for key, ttl, value in dumps[i : i + BATCH]:
                pipe.restore(key, ttl, value, replace=True)
            await pipe.execute()
    return time.perf_counter() - start


async def run(count: int, messages: int, workdir: Path) -> dict[str, Any]:
    source_server = EmbeddedRedis(workdir / "source", port=free_port())
    target_server = EmbeddedRedis(workdir / "target", port=free_port())
    for server in (source_server, target_server):
        server.start()
        await server.wait_ready()
    source, target = connect(source_server.url), connect(target_server.url)
    try:
        settings = settings_for(source_server.url)
        began = time.perf_counter()
        await populate(source, settings, count, messages)
        filled = time.perf_counter() - began
        covered = len(await store_keys(source))
        path = workdir / "export.jsonl"

        start = time.perf_counter()
        with path.open("w", encoding="utf-8") as out:
            summary = await Exporter(source, settings, out).run()
        export_s = time.perf_counter() - start
        lines = sum(summary.lines.values())
        dump_s, dumps = await bare_dump(source)

        start = time.perf_counter()
        plan = validate(path)
        validate_s = time.perf_counter() - start
        await write(target, settings, path, plan)
        import_s = time.perf_counter() - start
        restored = len(await store_keys(target))
        await target.flushall()
        restore_s = await bare_restore(target, dumps)
    finally:
        await close(source)
        await close(target)
        source_server.stop()
        target_server.stop()
    return {
        "filled_s": filled,
        "keys": covered,
        "restored_keys": restored,
        "lines": lines,
        "bytes": path.stat().st_size,
        "export_s": export_s,
        "dump_s": dump_s,
        "validate_s": validate_s,
        "import_s": import_s,
        "restore_s": restore_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=5, help="history entries per contact")
    args = parser.parse_args()
    gateway_logging.configure("warning", "console")
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(run(args.contacts, args.messages, Path(tmp)))
    keys_n, lines = r["keys"], r["lines"]
    print(
        f"bench.export — {args.contacts} contacts × {args.messages} messages, real redis-server "
        f"(filled in {r['filled_s']:.1f} s): {keys_n} keys, {lines} lines, "
        f"{r['bytes'] / 1e6:.1f} MB of JSON"
    )
    rows = (
        ("export", r["export_s"], "SCAN+DUMP", r["dump_s"]),
        ("import", r["import_s"], "RESTORE", r["restore_s"]),
    )
    for name, took, bare, bare_s in rows:
        print(
            f"  {name}: {took:6.2f} s  {lines / took:9.0f} lines/s  {keys_n / took:9.0f} keys/s"
            f"   bare {bare}: {bare_s:5.2f} s  {keys_n / bare_s:9.0f} keys/s"
            f"   ratio {bare_s / took:.2f}"
        )
    print(f"  (of the import, validating the file: {r['validate_s']:.2f} s)")
    same = "yes" if r["restored_keys"] == keys_n else f"NO ({r['restored_keys']})"
    print(f"  restored keys = source keys: {same}")


if __name__ == "__main__":
    main()
