"""A reply the messenger refused for good, and the operator's ways out of it.

When a messenger refuses an operator's reply (the bot is blocked, the person
unsubscribed, the photo cannot be processed, WhatsApp's 24-hour window is over …),
delivery marks the operator's message with 💔 — ⚠️ is not among the reactions Telegram
lets a bot set — and answers it in the topic with the reason and buttons:

- **[🔁 Retry]** sends the same message again (the customer unblocked the bot);
- **[📎 Send as file]** (a photo, video, voice …) sends it as a document: messengers
  take as a file what they refuse as media (sizes, formats);
- **[↪️ Via <channel>]** sends it through another messenger the same person wrote from
  (or WhatsApp, by their saved phone).

Where the messenger reports failures later, in a receipt (Viber, WhatsApp), every
send is kept a day, until it is delivered, so a failure receipt gets the same buttons.
The refused send is kept a week (:func:`gateway.store.keys.undelivered`) for the
buttons, whose data is ``d:<retry|file|via>:<operator's message>[:<account's index>]``
(Telegram allows 64 bytes). A press queues the new send, removes the notice and the 💔,
and forgets the refused one, in one transaction: a second press finds nothing to do.
A new refusal starts over with a new notice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from redis.asyncio.client import Pipeline

from gateway.config import Settings, WhatsAppChannel
from gateway.contacts import Contacts, chats_of
from gateway.jobs import CustomerSend, Job, StaffDelete, StaffNotice, StaffReact, _Job
from gateway.model import AccountId, Button, ContactId, Destination, InboundCallback, Kind
from gateway.staff import render
from gateway.staff.reach import Reacher, Unreachable
from gateway.store import keys
from gateway.store.redis import Redis, text
from gateway.store.writes import Writes

FAILED_MARK = "💔"
KEEP = timedelta(days=7)
UNTIL_RECEIPT = timedelta(days=1)
AS_FILE = frozenset(
    {Kind.PHOTO, Kind.VIDEO, Kind.AUDIO, Kind.VOICE, Kind.VIDEO_NOTE, Kind.ANIMATION}
)


@dataclass(frozen=True, slots=True)
class Failure:
    """What staff see of a refused reply (the 💔 mark, the notice with its buttons) and
    the record the buttons need."""

    jobs: list[Job]
    key: str
    record: str

    def keep(self, pipe: Pipeline | Writes) -> None:
        """Keep the record for the buttons, in the caller's transaction."""
        pipe.set(self.key, self.record, ex=KEEP)


class Redeliver:
    """The failure notice's buttons (scope ``d``), for :class:`gateway.staff.buttons.Buttons`."""

    def __init__(self, redis: Redis, settings: Settings, contacts: Contacts) -> None:
        self.redis = redis
        self.settings = settings
        self.contacts = contacts
        self.reacher = Reacher(redis, settings, contacts)

    @staticmethod
    def keep_until_receipt(pipe: Pipeline | Writes, job: CustomerSend) -> None:
        """Keep a sent reply until its receipt, in the caller's transaction: a failure
        receipt's buttons need it."""
        record = json.dumps({"job": job.model_dump(mode="json"), "via": []})
        pipe.set(keys.undelivered(job.staff_chat, job.staff_message), record, ex=UNTIL_RECEIPT)

    async def failed(self, job: CustomerSend, reason: str) -> Failure:
        """What staff see of a refused reply, and what its buttons need."""
        refused = job.destination.account
        alternatives = await self._others(job.contact_id, refused)
        line = self.settings.line_at(job.staff_chat)
        message = job.staff_message
        row = [Button(text="🔁 Retry", data=f"d:retry:{message}")]
        if job.content.kind in AS_FILE and job.content.attachment is not None:
            row.append(Button(text="📎 Send as file", data=f"d:file:{message}"))
        rows: list[tuple[Button, ...]] = [tuple(row)]
        for index, account in enumerate(alternatives):
            channel = self.settings.channel(account)
            kind = channel.kind.capitalize() if channel is not None else account
            via = Button(text=f"↪️ Via {kind} ({account})", data=f"d:via:{message}:{index}")
            rows.append((via,))
        mark = StaffReact(
            out_id=f"failed-mark:{job.out_id}",
            contact_id=job.contact_id,
            message_id=message,
            emoji=FAILED_MARK,
            chat=job.staff_chat,
        )
        notice = StaffNotice(
            out_id=f"failed:{job.out_id}",
            contact_id=job.contact_id,
            text=render.not_delivered(reason),
            reply_to=message,
            buttons=tuple(rows),
            line=line.name if line is not None else None,
        )
        record = json.dumps({"job": job.model_dump(mode="json"), "via": alternatives})
        return Failure([mark, notice], keys.undelivered(job.staff_chat, message), record)

    async def reported(self, key: str, reason: str) -> Failure | None:
        """A failure receipt for a kept send (``key``); ``None``: not kept, a plain
        notice will do."""
        stored = await self.redis.get(key)
        if stored is None:
            return None
        job = CustomerSend.model_validate(json.loads(text(stored))["job"])
        return await self.failed(job, reason)

    async def _others(self, contact_id: ContactId, refused: str) -> list[str]:
        """The accounts besides ``refused`` that could reach the person: those they
        wrote to, and WhatsApp when their phone is known (whether each may write now is
        checked when pressed, by :class:`Reacher`)."""
        data = await self.contacts.get(contact_id)
        wrote = {identity.partition(":")[0] for identity in chats_of(data)}
        if await self.redis.scard(keys.contact_phones(contact_id)):
            wrote |= {c.id for c in self.settings.channels if isinstance(c, WhatsAppChannel)}
        return sorted(a for a in wrote if a != refused and self.settings.channel(a) is not None)

    async def press(
        self, action: str, argument: str, press: InboundCallback, contact_id: ContactId
    ) -> tuple[str, list[_Job], str]:
        """What the press does: ``(answer, jobs, key to forget)``; ``jobs`` empty: the
        answer is a refusal."""
        message, _, index = argument.partition(":")
        key = keys.undelivered(press.sender.chat_id, message)
        stored = await self.redis.get(key)
        if stored is None:
            return "Already sent again, or too old: write the message anew.", [], key
        record: dict[str, Any] = json.loads(text(stored))
        job = CustomerSend.model_validate(record["job"])
        if job.contact_id != contact_id:  # the topic changed hands (a merge): still theirs
            job = job.model_copy(update={"contact_id": contact_id})
        destination, content = job.destination, job.content
        if action == "file" and content.kind in AS_FILE:
            content = content.model_copy(update={"kind": Kind.DOCUMENT})
            answer = "Sending it as a file…"
        elif action == "via" and index.isdigit() and int(index) < len(record["via"]):
            account = record["via"][int(index)]
            try:
                reach = await self.reacher.reach(contact_id, press.received_at, account)
            except Unreachable as exc:
                return f"Cannot send via {account}: {exc}.", [], key
            destination = Destination(account=AccountId(reach.account), chat_id=reach.chat)
            answer = f"Sending it via {account}…"
        elif action == "retry":
            answer = "Sending it again…"
        else:
            return "This button is out of date.", [], key
        again = job.model_copy(
            update={
                "out_id": f"redeliver:{press.key}",
                "destination": destination,
                "content": content,
                "created_at": time.time(),
            }
        )
        unmark = StaffReact(
            out_id=f"unmark:{press.key}",
            contact_id=contact_id,
            message_id=job.staff_message,
            emoji="",
            chat=job.staff_chat,
        )
        notice = StaffDelete(
            out_id=f"delete:{press.key}", contact_id=contact_id, message_id=press.message_id
        )
        return answer, [again, unmark, notice], key
