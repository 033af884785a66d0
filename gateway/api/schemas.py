"""The API's shared response models, and how the stores' records become them.

Times are ISO-8601 with the offset of the gateway's ``timezone`` (``2026-11-23T10:05:00+03:00``),
the zone staff see; ids are strings (contact ids, Telegram operator ids, process
numbers), so no client has to care about 53-bit integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import Field

from gateway import process as bp
from gateway.api.errors import not_found
from gateway.api.registry import In, Out
from gateway.external import API_ACCOUNT
from gateway.model import Channel, ContactId
from gateway.process import Process, Status, Task
from gateway.staff.commands import topic_link
from gateway.staff.desk import Desk
from gateway.store import keys
from gateway.store.redis import text

CONTACT_ID = r"^[1-9][0-9]{0,18}$"


class ContactPath(In):
    contact_id: str = Field(pattern=CONTACT_ID)
    """The gateway's id of the person (``#17`` in the staff group)."""


class Identity(Out):
    account: str
    """The channel account (``channels[].id``)."""
    user_id: str
    """The person's id on that messenger."""
    channel: str | None
    """``telegram``, ``vk``, ``viber``, ``whatsapp``, or ``api`` for someone known only
    from ``POST /events`` (``None``: an account no longer configured)."""
    last_seen: datetime | None
    """When they last wrote from this identity."""


class ReplyRoute(Out):
    account: str
    channel: str | None


class Contact(Out):
    id: str
    display_name: str
    username: str | None
    kind: str
    """``client`` or ``lead``."""
    first_seen: datetime | None
    last_seen: datetime | None
    identities: list[Identity]
    phones: list[str]
    """E.164 (``+79161234567``)."""
    emails: list[str]
    """Lower-case."""
    replies_via: ReplyRoute | None
    """Where an operator's reply (or a message sent without ``account``) goes: the
    messenger the person wrote from last."""
    merged_into: str | None
    """Set when this contact was merged into another (which now stands for the person)."""
    merged_at: datetime | None
    absorbed: list[str]
    """Contacts merged into this one."""
    topic_url: str | None
    """The person's topic in the staff group."""


class TaskOut(Out):
    contact_id: str
    process: str
    """The process number (``BP-20261123-0007``)."""
    number: int
    """1, 2, … within the process."""
    status: Status
    opened_at: datetime
    respond_by: datetime
    awaiting_reply: bool
    """The customer waits for an answer (the deadline runs)."""
    overdue: bool
    responsible: str | None
    """The operator's Telegram id."""
    transferred_to: str | None
    """While ``returned``: the operator id or role it waits for."""
    answered_at: datetime | None
    last_inbound_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    continued_in: str | None
    """For a task closed as ``carried_over``: the process it continues in."""
    seen_at: datetime | None
    seen_by: str | None
    take_by: datetime | None
    """While new or returned: when it escalates if nobody takes it."""


class ProcessOut(Out):
    contact_id: str
    number: str
    day: date
    opened_at: datetime
    title: str | None
    current: bool
    """The contact's current process (the others are archived)."""
    status: Status
    """Its latest task's status."""
    tasks: list[TaskOut]


class Page(Out):
    next_cursor: str | None
    """Pass it as ``cursor`` for the next page; ``null`` at the end. A page may hold fewer
    than ``limit`` items before the end: continue while it is not ``null``."""


def local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    return value.astimezone(zone) if value is not None else None


def task_out(
    contact_id: str, process: Process, task: Task, now: datetime, zone: ZoneInfo
) -> TaskOut:
    latest = task is process.task
    return TaskOut(
        contact_id=contact_id,
        process=process.number,
        number=task.number,
        status=task.status,
        opened_at=task.opened_at.astimezone(zone),
        respond_by=task.respond_by.astimezone(zone),
        awaiting_reply=task.awaiting_reply,
        overdue=latest and bp.overdue(process, now),
        responsible=task.responsible,
        transferred_to=task.transferred_to,
        answered_at=local(task.answered_at, zone),
        last_inbound_at=local(task.last_inbound_at, zone),
        closed_at=local(task.closed_at, zone),
        close_reason=task.close_reason,
        continued_in=task.continued_in,
        seen_at=local(task.seen_at, zone),
        seen_by=task.seen_by,
        take_by=local(task.take_by, zone),
    )


def process_out(
    contact_id: str, process: Process, *, current: bool, now: datetime, zone: ZoneInfo
) -> ProcessOut:
    return ProcessOut(
        contact_id=contact_id,
        number=process.number,
        day=process.day,
        opened_at=process.opened_at.astimezone(zone),
        title=process.title,
        current=current,
        status=process.task.status,
        tasks=[task_out(contact_id, process, t, now, zone) for t in process.tasks],
    )


def _when(raw: str | None, zone: ZoneInfo) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).astimezone(zone)
    except ValueError:  # pragma: no cover - the gateway writes ISO times only
        return None


async def contact_out(desk: Desk, contact_id: ContactId) -> Contact | None:
    """The contact as the API shows it (``None``: no such contact)."""
    return (await contacts_out(desk, [contact_id]))[0]


async def contacts_out(desk: Desk, ids: Sequence[ContactId]) -> list[Contact | None]:
    """Contacts as the API shows them, read in one round trip for the lot (a page of
    200 costs one, not a thousand)."""
    async with desk.redis.pipeline(transaction=False) as pipe:
        for contact_id in ids:
            pipe.hgetall(keys.contact(contact_id))
            pipe.smembers(keys.contact_identities(contact_id))
            pipe.smembers(keys.contact_phones(contact_id))
            pipe.smembers(keys.contact_emails(contact_id))
            pipe.smembers(keys.contact_absorbed(contact_id))
            asked = desk.lines.ask(pipe, contact_id)
        replies = iter(await pipe.execute())
    found = []
    for contact_id in ids:
        raw, identities, phones, emails, absorbed = (next(replies) for _ in range(5))
        line, topic = desk.lines.answer([next(replies) for _ in range(asked)])
        data = {text(k): text(v) for k, v in raw.items()}
        found.append(
            _contact(
                desk,
                contact_id,
                data,
                sorted(text(v) for v in identities),
                sorted(text(v) for v in phones),
                sorted(text(v) for v in emails),
                sorted((text(v) for v in absorbed), key=int),
                topic_link(str(line.chat_id), topic) if topic is not None else None,
            )
            if data
            else None
        )
    return found


def _contact(
    desk: Desk,
    contact_id: ContactId,
    data: dict[str, str],
    identities: list[str],
    phones: list[str],
    emails: list[str],
    absorbed: list[str],
    topic_url: str | None,
) -> Contact:
    settings, zone = desk.settings, desk.settings.zone

    def kind_of(account: str) -> str | None:
        if account == API_ACCOUNT:  # someone known from a call, form or e-mail (/events)
            return Channel.API.value
        channel = settings.channel(account)
        return channel.kind if channel is not None else None

    route = data.get("reply_account")
    return Contact(
        id=contact_id,
        display_name=data.get("display_name", ""),
        username=data.get("username") or None,
        kind=data.get("kind", "client"),
        first_seen=_when(data.get("first_seen"), zone),
        last_seen=_when(data.get("last_seen"), zone),
        identities=[
            Identity(
                account=(account := identity.partition(":")[0]),
                user_id=identity.partition(":")[2],
                channel=kind_of(account),
                last_seen=_when(data.get(f"seen@{identity}"), zone),
            )
            for identity in identities
        ],
        phones=phones,
        emails=emails,
        replies_via=ReplyRoute(account=route, channel=kind_of(route)) if route else None,
        merged_into=data.get("merged_into"),
        merged_at=_when(data.get("merged_at"), zone),
        absorbed=absorbed,
        topic_url=topic_url,
    )


async def existing_contact(desk: Desk, contact_id: ContactId) -> Contact:
    """:func:`contact_out`, or a 404."""
    found = await contact_out(desk, contact_id)
    if found is None:
        raise not_found(f"No contact #{contact_id}.")
    return found
