"""``/operators``: who works, whether they are online, and how loaded they are.

The same facts ``/status`` shows staff: availability as the operator last said it
(``/online``, ``/offline``, or set offline after ``staff.idle_offline_minutes``), and
load as their open tasks (kept with the process state, so a task transferred to
someone counts for them at once) against ``max_chats``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from gateway.api.errors import not_found
from gateway.api.registry import Call, In, Out, Routes
from gateway.config import Operator
from gateway.store import keys
from gateway.store.redis import text

routes = Routes("operators", "The staff: availability and load.")


class OperatorOut(Out):
    id: str
    """The operator's Telegram id."""
    name: str
    roles: list[str]
    department: str | None
    admin: bool
    accounts: list[str]
    """Accounts whose customers they may write to (empty: all)."""
    status: Literal["online", "offline"]
    since: datetime | None
    """When they went online or offline (``null``: never said)."""
    load: int
    """Open tasks they are responsible for, or that wait for them."""
    capacity: int
    """``max_chats``: no new tasks are routed to them at or above it."""
    on_shift: bool
    """Within their working hours (always, without any)."""
    available: bool
    """Online, on shift and below capacity: routing would give them a task."""


class OperatorList(Out):
    items: list[OperatorOut]


class OperatorPath(In):
    operator_id: str = Field(pattern=r"^[1-9][0-9]{0,18}$")


async def _shown(call: Call, operators: list[Operator]) -> list[OperatorOut]:
    desk, now = call.desk, call.now
    presence = desk.presence
    ids = [str(o.id) for o in operators]
    states = await desk.redis.hmget(keys.PRESENCE, ids) if ids else []
    out = []
    for operator, raw in zip(operators, states, strict=True):
        state, _, since = text(raw).partition(":") if raw is not None else ("offline", "", "")
        load = await presence.load(str(operator.id))
        online = state == "online"
        on_shift = presence.on_shift(str(operator.id), now)
        out.append(
            OperatorOut(
                id=str(operator.id),
                name=operator.name,
                roles=list(operator.roles),
                department=operator.department,
                admin=operator.admin,
                accounts=list(operator.accounts),
                status="online" if online else "offline",
                since=datetime.fromisoformat(since).astimezone(desk.settings.zone)
                if since
                else None,
                load=load,
                capacity=operator.max_chats,
                on_shift=on_shift,
                available=online and on_shift and load < operator.max_chats,
            )
        )
    return out


@routes.route("GET", "/operators", scope="read", response=OperatorList)
async def list_operators(call: Call) -> OperatorList:
    """Every operator of ``staff.operators``, with availability and load"""
    return OperatorList(items=await _shown(call, list(call.desk.settings.staff.operators)))


@routes.route(
    "GET",
    "/operators/{operator_id}",
    scope="read",
    path_params=OperatorPath,
    response=OperatorOut,
    errors=(404,),
)
async def get_operator(call: Call) -> OperatorOut:
    """One operator, with availability and load"""
    wanted = call.path(OperatorPath).operator_id
    found = [o for o in call.desk.settings.staff.operators if str(o.id) == wanted]
    if not found:
        raise not_found(f"No operator {wanted} in staff.operators.")
    return (await _shown(call, found))[0]
