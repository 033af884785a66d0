"""Operators' availability and load: ``/online``, ``/offline`` and ``/status``.

Availability is what an operator says it is (``/online`` / ``/offline``, in any topic
of the staff group or a private chat with the bot), until ``staff.idle_offline_minutes``
without activity sets them offline; load is how many open tasks they are responsible
for, kept with the process state (``keys.OWNED``). Capacity is
``staff.operators[].max_chats``; ``staff.operators[].working_hours`` their shifts.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from gateway.config import Settings
from gateway.hours import Schedule
from gateway.staff.tasks import local_time
from gateway.store import keys
from gateway.store.redis import Redis, text

COMMANDS = frozenset({"online", "offline", "status", "queue"})


class Presence:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings

    async def set(self, operator: str, online: bool, at: datetime) -> None:
        await self.redis.hset(keys.PRESENCE, operator, state_of(online, at))

    async def touch(self, operator: str, at: datetime) -> None:
        """``operator`` did something in the staff group: the idle clock restarts."""
        minutes = self.settings.staff.idle_offline_minutes
        if minutes is None or not operator.isdigit():
            return
        ms = int(at.timestamp() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.ACTIVE, operator, ms)
            # GT: a late event (a retried entry) never pulls the timer back.
            pipe.zadd(keys.TIMERS, {f"{keys.IDLE}:{operator}": ms + int(minutes * 60_000)}, gt=True)
            await pipe.execute()

    async def last_active(self, operator: str) -> datetime | None:
        raw = await self.redis.hget(keys.ACTIVE, operator)
        return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw is not None else None

    @functools.cached_property
    def _shifts(self) -> dict[str, Schedule]:
        zone = self.settings.zone
        return {
            str(o.id): o.working_hours.schedule(zone)
            for o in self.settings.staff.operators
            if o.working_hours is not None
        }

    def on_shift(self, operator: str, at: datetime) -> bool:
        """Within the operator's working hours (always, when they have none)."""
        shift = self._shifts.get(operator)
        return shift is None or shift.is_open(at)

    async def online(self, operators: list[str]) -> frozenset[str]:
        """Which of ``operators`` last said ``/online``."""
        if not operators:
            return frozenset()
        states = await self.redis.hmget(keys.PRESENCE, operators)
        return frozenset(
            operator
            for operator, state in zip(operators, states, strict=True)
            if state is not None and text(state).startswith("online:")
        )

    async def load(self, operator: str) -> int:
        if not operator.isdigit():
            return 0
        return int(await self.redis.zcount(keys.OWNED, int(operator), int(operator)))

    async def status(self, names: dict[str, str]) -> str:
        """One line per operator: availability since when, and load against capacity."""
        raw = await self.redis.hgetall(keys.PRESENCE)
        states = {text(k): text(v) for k, v in raw.items()}
        capacity = {str(o.id): o.max_chats for o in self.settings.staff.operators}
        people = list(names) or sorted(states)
        if not people:
            return "No operator has said /online or /offline yet."
        lines = []
        for operator in people:
            state, _, since = states.get(operator, "offline:").partition(":")
            icon = "🟢" if state == "online" else "⚪️"
            when = (
                f" since {local_time(datetime.fromisoformat(since), self.settings.zone)}"
                if since
                else ""
            )
            load = await self.load(operator)
            limit = capacity.get(operator)
            busy = f"{load}/{limit}" if limit else str(load)
            full = " · at capacity" if limit and load >= limit else ""
            name = names.get(operator, operator)
            lines.append(f"{icon} {name}: {state}{when} · tasks {busy}{full}")
        return "Operators:\n" + "\n".join(lines)


def state_of(online: bool, at: datetime) -> str:
    """The ``keys.PRESENCE`` value: ``online|offline:<iso time>``."""
    return f"{'online' if online else 'offline'}:{at.astimezone(UTC).isoformat()}"
