"""Coalescing: a burst for one staff topic costs a few sends, not one per message.

Telegram lets a bot post about 20 messages a minute into a group. When a topic's next
customer message has to wait for that budget, the texts of the same sender queued
behind it (in the same partition stream, not yet handled) are combined into one staff
message, each line keeping its time. Other contacts' entries in between are left where
they are; this contact's order is kept (a message that cannot be combined — a photo, a
quote, an edit — ends the run). Task-card refreshes of the contact in between are
skipped over: the card is redrawn from the current state whenever it is refreshed,
and a refresh followed by another one of the same card is dropped (see
:func:`superseded`).

Every combined message stays mapped to the one staff copy (replies to it quote the
customer's last message); a customer's later edit of one of them is posted as a reply
rather than clobbering the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from gateway.bus import Entry
from gateway.jobs import JOB, StaffCard, StaffPost, _Job
from gateway.model import Content, InboundMessage, Kind
from gateway.store.redis import Redis, text

LOOKAHEAD = 100
"""Entries of the partition stream read past the current one."""
MAX_MESSAGES = 30
MAX_CHARS = 4000
"""Telegram's limit is 4096 characters a message; the time stamps take some."""


@dataclass(frozen=True, slots=True)
class Queued:
    entry: Entry
    job: _Job


async def ahead(redis: Redis, entry: Entry, count: int = LOOKAHEAD) -> list[Queued]:
    """The entries queued after ``entry`` in its stream (not yet handled), parsed."""
    raw: Any = await redis.xrange(entry.stream, min=f"({entry.id}", count=count)
    found = []
    for entry_id, fields in raw or ():
        payload = (fields or {}).get(b"e", b"")
        if payload:
            later = Entry(entry.stream, text(entry_id), payload)
            found.append(Queued(later, JOB.validate_json(payload)))
    return found


def mergeable(message: InboundMessage) -> bool:
    """Plain text, quoting nothing: can share a staff message with its neighbours."""
    content = message.content
    return (
        content.kind is Kind.TEXT
        and bool(content.text)
        and content.attachment is None
        and not content.buttons
        and message.reply_to is None
        and not message.edited
    )


def followers(first: StaffPost, queued: Sequence[Queued]) -> list[Queued]:
    """The run of ``first``'s contact's texts from the same chat right behind it."""
    if not mergeable(first.message):
        return []
    sender = first.message.sender
    size = len(first.message.content.text or "")
    run: list[Queued] = []
    for item in queued:
        job = item.job
        if job.contact_id != first.contact_id or isinstance(job, StaffCard):
            continue  # another contact's, or a card redrawn later anyway
        if not isinstance(job, StaffPost) or not mergeable(job.message):
            break
        other = job.message.sender
        if (other.account, other.chat_id) != (sender.account, sender.chat_id):
            break
        size += len(job.message.content.text or "") + 10
        if len(run) + 1 >= MAX_MESSAGES or size > MAX_CHARS:
            break
        run.append(item)
    return run


def combined(messages: Sequence[InboundMessage], zone: tzinfo) -> Content:
    """One text with every message on its own line(s), each with its time."""
    lines = [f"{m.sent_at.astimezone(zone):%H:%M:%S} {m.content.text or ''}" for m in messages]
    return Content(kind=Kind.TEXT, text="\n".join(lines))


def superseded(card: StaffCard, queued: Sequence[Queued]) -> bool:
    """Another refresh of the same card is queued: this one need not be drawn."""
    return any(
        isinstance(item.job, StaffCard) and item.job.contact_id == card.contact_id
        for item in queued
    )
