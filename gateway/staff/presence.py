"""Operators' availability and load: ``/online``, ``/offline`` and ``/status``.

Availability is what an operator says it is (``/online`` / ``/offline``, in any topic
of the staff group); load is how many open tasks they are responsible for, kept with
the process state (``keys.OWNED``). Capacity is ``staff.operators[].max_chats``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.config import Settings
from gateway.staff.tasks import local_time
from gateway.store import keys
from gateway.store.redis import Redis, text

COMMANDS = frozenset({"online", "offline", "status", "queue"})


class Presence:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings

    async def set(self, operator: str, online: bool, at: datetime) -> None:
        state = "online" if online else "offline"
        await self.redis.hset(keys.PRESENCE, operator, f"{state}:{at.astimezone(UTC).isoformat()}")

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
