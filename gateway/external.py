"""Events from other systems — a missed call, a website form, an e-mail — handled as a
customer's message is: the person's contact, the day's business process by the same
rule (a new task, or the open one updated), a line in their staff topic.

The person is found by what the event knows: their phone (E.164) or e-mail, through the
same indexes the messengers' contacts fill (a customer who shared their phone in
Telegram is recognised when they call). Someone unknown becomes a new contact whose
only identity is on the ``api`` channel: staff see them in a topic like any customer,
and an operator's reply there is refused with a notice (nothing can be sent back
through a missed call), until the person writes from a messenger.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from gateway import process as bp
from gateway.bus import Entry
from gateway.jobs import StaffNotice
from gateway.logging import bind_context
from gateway.model import (
    AccountId,
    Channel,
    ChatId,
    ContactId,
    Content,
    InboundExternal,
    Kind,
    PlatformUserId,
    Sender,
)
from gateway.process import Transition
from gateway.store import keys
from gateway.store.processes import ContactMerged
from gateway.store.redis import text
from gateway.worker import Worker

log = structlog.get_logger(__name__)
API_ACCOUNT = AccountId("api")
ICONS = {"missed_call": "📞", "form": "📝", "email": "✉️"}
TEXT_LIMIT = 3500
"""Characters of an event's text shown in the topic (a Telegram message holds 4096)."""


def sender_of(name: str | None, phone: str | None, email: str | None) -> Sender:
    """The person as an event knows them: identified by phone, else by e-mail."""
    ident = phone or email
    if ident is None:
        raise ValueError("an event names a phone or an e-mail")
    return Sender(
        account=API_ACCOUNT,
        channel=Channel.API,
        user_id=PlatformUserId(ident),
        chat_id=ChatId(ident),
        display_name=(name or ident)[:128],
        phone=phone,
    )


def describe(
    event: str,
    at: datetime,
    zone: ZoneInfo,
    *,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
    line: str | None = None,
    subject: str | None = None,
    body: str | None = None,
) -> str:
    """The line staff see in the topic, e.g. ``📞 Missed call from +79161234567 ·
    line Sales · 14:05``."""
    when = f"{at.astimezone(zone):%H:%M}"
    who = " ".join(p for p in (name, phone or email) if p)
    if event == "missed_call":
        head = f"📞 Missed call from {who}" + (f" · line {line}" if line else "") + f" · {when}"
    elif event == "form":
        head = "📝 Website form" + (f" «{line}»" if line else "") + f" · {when}\n{who}"
        if phone and email:
            head += f" · {email}"
    else:
        head = f"✉️ E-mail from {who} · {when}" + (f"\nSubject: {subject}" if subject else "")
    if body:
        head += "\n\n" + body.strip()
    return head[:TEXT_LIMIT]


class External(Worker):
    async def handle(self, event: InboundExternal, entry: Entry) -> None:
        at, store = event.occurred_at, self.processes
        for _ in range(3):  # a merge may move the contact while we work
            contact_id = await self._contact(event)
            bind_context(contact_id=contact_id)
            account = event.account or await self.account_of(contact_id) or API_ACCOUNT
            sla = store.sla_for(account)
            notice = StaffNotice(
                out_id=f"event:{event.key}", contact_id=contact_id, text=event.text
            )
            line = self.settings.line_of(account).name if self.lines.several else None

            def step(current: bp.Process | None, number_for: bp.NumberFor) -> Transition:
                return bp.inbound(
                    current,
                    at,
                    zone=store.zone,
                    sla=sla,  # noqa: B023
                    number_for=number_for,
                    line=line,  # noqa: B023
                )

            try:
                transition = await store.apply(
                    contact_id,
                    at,
                    step,
                    self.in_line(
                        contact_id,
                        False,
                        self.recorded(
                            self.effects(entry, notice),
                            contact_id,
                            event.sender,  # channel api, account api, their phone or e-mail
                            at,
                            Content(kind=Kind.TEXT, text=event.text),
                            event.key,
                        ),
                    ),
                    once=event.key,
                    may_open=True,
                )
            except ContactMerged:
                continue
            break
        else:
            raise RuntimeError("the contact kept being merged while its event was handled")
        number = transition.process.number if transition else None
        log.info("external.accepted", kind=event.event, process=number)

    async def _contact(self, event: InboundExternal) -> ContactId:
        """The person the event is about: whoever has its phone, else its e-mail, else
        a new contact (with that phone and e-mail)."""
        lookups = [keys.phone(event.phone)] if event.phone else []
        lookups += [keys.email(event.email)] if event.email else []
        owner = next((o for o in await self.redis.mget(lookups) if o is not None), None)
        if owner is not None:
            contact_id = await self.contacts.survivor(ContactId(text(owner)))
        else:
            contact_id = await self.contacts.lead(event.sender, event.received_at, event.phone)
        if event.phone:
            await self.contacts.add_phone(contact_id, event.phone)
        if event.email:
            await self.contacts.add_email(contact_id, event.email)
        return contact_id
