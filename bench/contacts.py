"""Contact resolution at scale, measured side by side in one run.

    python -m bench.contacts [--contacts 100000] [--lookups 20000] [--concurrency 32]

Against a real redis-server, creates ``--contacts`` contacts through the real resolve
script (a third of them with a phone, so the dedup index is populated as in life),
then reports:

- Redis memory per contact (``used_memory`` growth / contacts; target ≤ 1 KiB without
  message history);
- resolutions/s of known senders (the hot path of every inbound message), one at a
  time and with ``--concurrency`` in flight, each vs a bare loop doing the same number
  of round trips (``GET``) the same way, as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench._common import free_port
from gateway.contacts import Contacts
from gateway.model import AccountId, Channel, ChatId, PlatformUserId, Sender
from gateway.store.redis import EmbeddedRedis, Redis, close, connect

KIB = 1024


def sender(i: int) -> Sender:
    return Sender(
        account=AccountId("tg_shop" if i % 2 else "tg_support"),
        channel=Channel.TELEGRAM,
        user_id=PlatformUserId(str(100_000_000 + i)),
        chat_id=ChatId(str(100_000_000 + i)),
        display_name=f"Customer {i}",
        username=f"customer_{i}",
    )


async def _populate(contacts: Contacts, count: int, at: datetime) -> None:
    batch = 64
    for start in range(0, count, batch):
        await asyncio.gather(
            *(
                contacts.resolve(sender(i), at, None, phone=f"+7916{i:07d}" if i % 3 == 0 else None)
                for i in range(start, min(count, start + batch))
            )
        )


async def _timed(concurrency: int, total: int, call: object) -> float:
    """Calls/s of ``call(i)`` for ``total`` calls with ``concurrency`` in flight."""
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            await call(i)  # type: ignore[operator]

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


async def run(count: int, lookups: int, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), port=free_port())
        server.start()
        await server.wait_ready()
        redis: Redis = connect(server.url, max_connections=max(concurrency, 64) + 4)
        try:
            contacts = Contacts(redis)
            at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
            await contacts.resolve(sender(-1), at)  # loads the script
            before = int((await redis.info("memory"))["used_memory"])
            start = time.perf_counter()
            await _populate(contacts, count, at)
            populate_s = time.perf_counter() - start
            after = int((await redis.info("memory"))["used_memory"])
            picks = [random.randrange(count) for _ in range(lookups)]

            async def resolve(i: int) -> None:
                await contacts.resolve(sender(picks[i]), at, None)

            async def bare(i: int) -> None:
                await redis.get("bench:nothing")

            result = {"bytes_per_contact": (after - before) / count, "populate_s": populate_s}
            for name, n in (("serial", 1), ("concurrent", concurrency)):
                result[f"{name}_resolve"] = await _timed(n, lookups, resolve)
                result[f"{name}_bare"] = await _timed(n, lookups, bare)
        finally:
            await close(redis)
            server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    r = asyncio.run(run(args.contacts, args.lookups, args.concurrency))
    per = r["bytes_per_contact"]
    print(f"bench.contacts — {args.contacts} contacts (a third with a phone), real redis-server")
    print(
        f"  Redis memory per contact: {per:.0f} bytes   target ≤ {KIB}   "
        f"{'PASS' if per <= KIB else 'MISS'}   (created in {r['populate_s']:.1f} s)"
    )
    for name, label in (
        ("serial", "one at a time"),
        ("concurrent", f"{args.concurrency} in flight"),
    ):
        resolve, bare = r[f"{name}_resolve"], r[f"{name}_bare"]
        print(
            f"  resolve a known sender, {label}: {resolve:.0f}/s vs bare GET loop "
            f"{bare:.0f}/s: ratio {resolve / bare:.2f}"
        )


if __name__ == "__main__":
    main()
