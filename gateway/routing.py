"""Who gets a new task: the account's ``responsible`` operator, or a member of its role.

Only operators who said ``/online``, are within their working hours (if they have
any) and have room (open tasks below ``max_chats``) get new tasks. ``round_robin``
walks the role's members in a fixed order with a counter shared by every replica (one
``INCR``), skipping those away or full; ``least_busy`` picks the member with the fewest
open tasks (ties by the order); ``broadcast`` assigns nobody and names everyone
available, and the first to take or reply owns the task. When nobody is available the
task stays new, unassigned, and is handed out when someone of the role comes online or
has room again (:mod:`gateway.staff.waiting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.config import Line, Operator, Responsible, Settings
from gateway.jobs import StaffGeneral, StaffNotice, _Job
from gateway.model import ContactId, Mention, PlatformUserId
from gateway.staff.presence import Presence
from gateway.store import keys
from gateway.store.redis import Redis


@dataclass(frozen=True, slots=True)
class Choice:
    assignee: Operator | None
    """Who the task is assigned to (``None``: nobody)."""
    told: tuple[Operator, ...] = ()
    """Who is told about it (``broadcast``: every available member of the role)."""


class Router:
    def __init__(self, redis: Redis, settings: Settings, presence: Presence) -> None:
        self.redis = redis
        self.settings = settings
        self.presence = presence

    async def available(
        self, members: Sequence[Operator], at: datetime
    ) -> list[tuple[Operator, int]]:
        """Members who are online, on shift and below capacity, with their load, in order."""
        online = await self.presence.online([str(o.id) for o in members])
        out = []
        for operator in members:
            if str(operator.id) not in online or not self.presence.on_shift(str(operator.id), at):
                continue
            load = await self.presence.load(str(operator.id))
            if load < operator.max_chats:
                out.append((operator, load))
        return out

    async def choose(
        self, responsible: Responsible, at: datetime, line: Line | None = None
    ) -> Choice:
        """Whom a task goes to; a role's members only among ``line``'s operators (when
        the line names them)."""
        operators = self.settings.staff.operators
        if responsible.operator is not None:
            fixed = next(o for o in operators if o.id == responsible.operator)
            return Choice(fixed, (fixed,))
        role = responsible.role or ""
        works = set(line.operators) if line is not None and line.operators else None
        members = sorted(
            (o for o in operators if role in o.roles and (works is None or o.id in works)),
            key=lambda o: o.id,
        )
        available = await self.available(members, at)
        if not available:
            return Choice(None)
        if responsible.strategy == "broadcast":
            return Choice(None, tuple(o for o, _ in available))
        if responsible.strategy == "least_busy":
            chosen = min(available, key=lambda pair: (pair[1], pair[0].id))[0]
            return Choice(chosen, (chosen,))
        # round_robin: the next member after the last one chosen, among those available.
        turn = int(await self.redis.incr(keys.round_robin(role)))
        start = (turn - 1) % len(members)
        ids = {o.id for o, _ in available}
        for step in range(len(members)):
            candidate = members[(start + step) % len(members)]
            if candidate.id in ids:
                return Choice(candidate, (candidate,))
        return Choice(None)  # pragma: no cover - available is never empty here


def naming(
    prefix: str, operators: Sequence[Operator], suffix: str
) -> tuple[str, tuple[Mention, ...]]:
    """``prefix`` + the operators' names (each a mention that notifies them) + ``suffix``."""
    text, mentions = prefix, []
    for n, operator in enumerate(operators):
        if n:
            text += ", "
        mentions.append(
            Mention(
                offset=len(text),
                length=len(operator.name),
                user_id=PlatformUserId(str(operator.id)),
            )
        )
        text += operator.name
    return text + suffix, tuple(mentions)


def assigned(
    settings: Settings, operator: Operator, contact_id: ContactId, out: str, why: str = ""
) -> list[_Job]:
    """What tells ``operator`` a task is theirs: a mention in the topic, and with
    ``staff.notify_privately`` a private message with a link to it."""
    text, named = naming("📌 Assigned to ", [operator], f" ({why})." if why else ".")
    jobs: list[_Job] = [
        StaffNotice(out_id=f"assigned:{out}", contact_id=contact_id, text=text, mentions=named)
    ]
    if settings.staff.notify_privately:
        jobs.append(
            StaffGeneral(
                out_id=f"assigned-dm:{out}",
                contact_id=contact_id,
                text="📌 A task is assigned to you:",
                chat=str(operator.id),
                link_topic=True,
            )
        )
    return jobs
