"""Transfers: whom a task can go to (buttons with everyone's load) and whom to tell.

``/transfer`` with no name, or the card's [Transfer], offers the operators who are
online (with their load against capacity) and the roles (with how many of their
members are available). A task transferred to an operator waits for them, mentioned
in the topic; one transferred to a role waits for any member: those available are
mentioned, and it is in ``/queue`` until one takes it (or is handed it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway import process as bp
from gateway.config import Operator, Settings
from gateway.model import Button, Mention
from gateway.routing import Router, naming
from gateway.staff.presence import Presence
from gateway.staff.tasks import TaskCommands
from gateway.store.redis import Redis

Rows = tuple[tuple[Button, ...], ...]
Mentions = tuple[Mention, ...]


class Transfers:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.settings = settings
        self.presence = Presence(redis, settings)
        self.router = Router(redis, settings, self.presence)
        self.tasks = TaskCommands(settings)

    async def choices(self, actor: str, at: datetime) -> list[Button]:
        """Online operators (but ``actor``) with their load, then the roles."""
        operators = [o for o in self.settings.staff.operators if str(o.id) != actor]
        online = await self.presence.online([str(o.id) for o in operators])
        buttons = []
        for operator in operators:
            user_id = str(operator.id)
            if user_id in online:
                load = await self.presence.load(user_id)
                label = f"🟢 {operator.name} · {load}/{operator.max_chats}"
                buttons.append(Button(text=label, data=f"t:transfer:{user_id}"))
        for role, title in self.tasks.roles.items():
            members = [o for o in self.settings.staff.operators if role in o.roles]
            free = len(await self.router.available(members, at))
            buttons.append(Button(text=f"👥 {title} · {free} free", data=f"t:transfer:{role}"))
        if not buttons:  # nobody online and no roles: offer everyone by name
            buttons = [
                Button(text=o.name, data=f"t:transfer:{o.id}")
                for o in operators
                if str(o.id) != actor
            ]
        return buttons

    async def told(self, to: str, at: datetime) -> list[Operator]:
        """Whom a transfer to ``to`` mentions: the operator, or the role's members who
        are available now."""
        if not bp.is_role(to):
            return [o for o in self.settings.staff.operators if str(o.id) == to]
        members = [o for o in self.settings.staff.operators if to in o.roles]
        return [o for o, _ in await self.router.available(members, at)]


def rows(choices: Sequence[Button], per_row: int = 3) -> Rows:
    return tuple(tuple(choices[i : i + per_row]) for i in range(0, len(choices), per_row))


def announce(confirmation: str, to: str, told: Sequence[Operator]) -> tuple[str, Mentions]:
    """The transfer's confirmation with whom it waits for mentioned (so notified)."""
    if told:
        return naming(f"{confirmation} ", told, ": please /take it.")
    if bp.is_role(to):
        return f"{confirmation} Nobody of the role is available now: it waits in /queue.", ()
    return confirmation, ()
