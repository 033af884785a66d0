"""Reading the per-day statistics back: a day's counters, and sums over several days."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.admin import events as ev
from gateway.store.redis import Redis, text


@dataclass(frozen=True, slots=True)
class Counters:
    """One day's counters, or the sum of several days' (see :mod:`gateway.admin.events`
    for what each field counts)."""

    values: Mapping[str, int] = field(default_factory=dict)

    def get(self, name: str) -> int:
        return self.values.get(name, 0)

    @classmethod
    def total(cls, parts: Iterable[Counters]) -> Counters:
        summed: dict[str, int] = {}
        for part in parts:
            for name, value in part.values.items():
                summed[name] = summed.get(name, 0) + value
        return cls(summed)

    def by(self, prefix: str) -> dict[str, int]:
        """Counters named ``prefix<key>``, by key (e.g. ``in:channel:`` → per channel)."""
        return {k.removeprefix(prefix): v for k, v in self.values.items() if k.startswith(prefix)}

    @property
    def inbound(self) -> int:
        return sum(self.by("in:channel:").values())

    @property
    def outbound(self) -> int:
        return sum(self.by("out:channel:").values())

    @property
    def first_responses(self) -> int:
        return self.get("frt_n")

    @property
    def first_response_average(self) -> float | None:
        """Seconds, or ``None`` when no task was answered."""
        n = self.get("frt_n")
        return self.get("frt_sum") / n if n else None

    def first_response_buckets(self) -> list[int]:
        """Counts per bucket of ``events.FIRST_RESPONSE_BUCKETS``, then the rest (inf)."""
        bounds = [*map(str, ev.FIRST_RESPONSE_BUCKETS), "inf"]
        return [self.get(f"frt:{b}") for b in bounds]

    @property
    def resolution_average(self) -> float | None:
        n = self.get("res_n")
        return self.get("res_sum") / n if n else None

    @property
    def ratings(self) -> int:
        return self.get("csat_n")

    @property
    def rating_average(self) -> float | None:
        """The mean of the ratings given (1-5); ``None`` without any."""
        n = self.get("csat_n")
        return self.get("csat_sum") / n if n else None


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    counters: Counters


def days_until(now: datetime, zone: ZoneInfo, count: int) -> list[date]:
    """The last ``count`` local days, oldest first, ending with the day of ``now``."""
    today = now.astimezone(zone).date()
    return [today - timedelta(days=n) for n in range(count - 1, -1, -1)]


async def read_days(redis: Redis, days: list[date]) -> list[Day]:
    """The counters of ``days`` (a day nothing happened on has none), in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(ev.day_key(day))
        raws = await pipe.execute()
    return [
        Day(day, Counters({text(k): int(v) for k, v in raw.items()}))
        for day, raw in zip(days, raws, strict=True)
    ]
