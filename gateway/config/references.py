"""Checks across sections: every name the config refers to exists, reported with the
YAML path of the reference (``channels[1].responsible.role: …``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from gateway.config.sections import STAFF_ACCOUNT

if TYPE_CHECKING:
    from gateway.config import Settings

Problem = tuple[str, str]


def _twice(names: Iterable[str], path: str, what: str) -> list[Problem]:
    seen: set[str] = set()
    found = []
    for i, name in enumerate(names):
        if name in seen:
            found.append((f"{path}[{i}]", f"{what} {name!r} is defined twice"))
        seen.add(name)
    return found


def problems(settings: Settings) -> list[Problem]:
    """Every dangling or duplicate reference, each with the path where it is written."""
    staff = settings.staff
    found: list[Problem] = []
    accounts = [c.id for c in settings.channels]
    found += _twice(accounts, "channels", "channel id")
    found += [
        (f"channels[{i}].id", f"{STAFF_ACCOUNT!r} is reserved for the staff bot")
        for i, account in enumerate(accounts)
        if account == STAFF_ACCOUNT
    ]
    found += _twice((str(o.id) for o in staff.operators), "staff.operators", "operator")
    found += _twice((r.name for r in staff.roles), "staff.roles", "role")
    found += _twice((d.name for d in staff.departments), "staff.departments", "department")
    found += _twice((t.name for t in settings.templates), "templates", "quick reply")
    found += _twice((r.name for r in settings.antispam.rules), "antispam.rules", "spam rule")
    bots = [staff.token.get_secret_value()] + [t.get_secret_value() for t in staff.relay_bots]
    found += [
        (f"staff.relay_bots[{i - 1}]", "the same bot twice (or the staff bot itself)")
        for i, token in enumerate(bots)
        if i and token.split(":")[0] in {b.split(":")[0] for b in bots[:i]}
    ]

    operators = {o.id for o in staff.operators}
    declared = {r.name for r in staff.roles}
    roles = declared or {r for o in staff.operators for r in o.roles}
    where_roles = "staff.roles" if declared else "staff.operators[].roles"
    departments = {d.name for d in staff.departments}

    def role(path: str, name: str | None) -> None:
        if name is not None and name not in roles:
            found.append((path, f"no role {name!r} ({where_roles})"))

    def department(path: str, name: str | None) -> None:
        if name is not None and name not in departments:
            found.append((path, f"no department {name!r} (staff.departments)"))

    def account(path: str, name: str) -> None:
        if name not in accounts:
            found.append((path, f"no channel {name!r}"))

    for i, operator in enumerate(staff.operators):
        here = f"staff.operators[{i}]"
        for j, name in enumerate(operator.accounts):
            account(f"{here}.accounts[{j}]", name)
        if declared:
            for j, name in enumerate(operator.roles):
                role(f"{here}.roles[{j}]", name)
        department(f"{here}.department", operator.department)
    for i, unit in enumerate(staff.departments):
        if unit.head is not None and unit.head not in operators:
            found.append((f"staff.departments[{i}].head", f"{unit.head} is not in staff.operators"))
    for i, channel in enumerate(settings.channels):
        here = f"channels[{i}]"
        department(f"{here}.department", channel.department)
        route = channel.responsible
        if route is None:
            continue
        if route.operator is not None and route.operator not in operators:
            found.append(
                (f"{here}.responsible.operator", f"{route.operator} is not in staff.operators")
            )
        role(f"{here}.responsible.role", route.role)
        if route.role in declared and not any(route.role in o.roles for o in staff.operators):
            found.append((f"{here}.responsible.role", f"no operator has the role {route.role!r}"))
    for i, template in enumerate(settings.templates):
        for j, name in enumerate(template.accounts):
            account(f"templates[{i}].accounts[{j}]", name)
        for j, name in enumerate(template.roles):
            role(f"templates[{i}].roles[{j}]", name)
    found += _lines(settings, account, role)
    return found


def _lines(
    settings: Settings,
    account: Callable[[str, str], None],
    role: Callable[[str, str | None], None],
) -> list[Problem]:
    """Lines: distinct names and groups, each account served by one line, and every
    operator, role and account they name configured."""
    found: list[Problem] = []
    lines = settings.lines
    found += _twice((x.name for x in lines), "lines", "line")
    found += _twice((str(x.chat_id) for x in lines), "lines", "staff group")
    if lines and settings.staff.chat_id not in {x.chat_id for x in lines}:
        found.append(
            ("staff.chat_id", "with lines, leave it out or make it one of lines[].chat_id")
        )
    operators = {o.id for o in settings.staff.operators}
    served: dict[str, int] = {}
    global_quick = {t.name for t in settings.templates}
    for i, line in enumerate(lines):
        here = f"lines[{i}]"
        for j, name in enumerate(line.accounts):
            account(f"{here}.accounts[{j}]", name)
            if name in served:
                found.append(
                    (f"{here}.accounts[{j}]", f"{name!r} is served by lines[{served[name]}] too")
                )
            served.setdefault(name, i)
        for j, operator in enumerate(line.operators):
            if operators and operator not in operators:
                found.append((f"{here}.operators[{j}]", f"{operator} is not in staff.operators"))
        route = line.responsible
        if route is not None:
            if route.operator is not None and route.operator not in operators:
                found.append(
                    (f"{here}.responsible.operator", f"{route.operator} is not in staff.operators")
                )
            role(f"{here}.responsible.role", route.role)
        found += _twice((t.name for t in line.templates), f"{here}.templates", "quick reply")
        for j, template in enumerate(line.templates):
            if template.name in global_quick:
                found.append(
                    (f"{here}.templates[{j}]", f"quick reply {template.name!r} is global already")
                )
            for k, name in enumerate(template.accounts):
                account(f"{here}.templates[{j}].accounts[{k}]", name)
            for k, name in enumerate(template.roles):
                role(f"{here}.templates[{j}].roles[{k}]", name)
    return found
