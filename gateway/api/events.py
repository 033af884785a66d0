"""``POST /api/v1/events``: a missed call, a website form or an e-mail from another
system, handled like a customer's message (see :mod:`gateway.external`).

The answer (202) means the event is durably queued, as a webhook's 200 does; the same
``id`` posted again by the same client is recognised and not handled twice, so a client
may retry freely.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from gateway.api.errors import invalid
from gateway.api.registry import Call, In, Out, Routes
from gateway.external import describe, sender_of
from gateway.identity import InvalidIdentity, normalise_email, normalise_phone
from gateway.model import AccountId, Channel, InboundExternal
from gateway.pipeline import routing_key
from gateway.store import keys

routes = Routes(
    "events",
    "Inbound events from other systems — telephony, website forms, mailboxes — that open "
    "or update the person's task like a message does.",
)


class EventIn(In):
    type: Literal["missed_call", "form", "email"]
    """``missed_call`` needs ``phone``; ``email`` needs ``email``; ``form`` either."""
    id: str = Field(min_length=1, max_length=128)
    """Your id of the event: posting the same id again does nothing more."""
    phone: str | None = Field(None, min_length=3, max_length=64)
    """Any common notation; numbers without a country code use
    ``contacts.default_region``."""
    email: str | None = Field(None, min_length=3, max_length=254)
    name: str | None = Field(None, min_length=1, max_length=128)
    line: str | None = Field(None, min_length=1, max_length=64)
    """The telephone line that was called, or the form's name."""
    subject: str | None = Field(None, max_length=300)
    text: str | None = Field(None, max_length=20_000)
    """The form's fields or the e-mail's body, as staff should read them."""
    at: AwareDatetime | None = None
    """When it happened (default: now)."""
    account: str | None = Field(None, max_length=32)
    """The channel account whose rules apply (working hours, who is responsible);
    default: the one the person last wrote from."""

    @model_validator(mode="after")
    def _identified(self) -> EventIn:
        if self.type == "missed_call" and self.phone is None:
            raise ValueError("a missed call needs phone")
        if self.type == "email" and self.email is None:
            raise ValueError("an e-mail needs email")
        if self.phone is None and self.email is None:
            raise ValueError("give phone or email")
        return self


class EventAccepted(Out):
    id: str
    """The gateway's key of the event (``api:<client>:<type>:<your id>``)."""
    duplicate: bool
    """The same event was posted before: nothing more was done."""


@routes.route("POST", "/events", scope="write", body=EventIn, response=EventAccepted, status=202)
async def post_event(call: Call) -> EventAccepted:
    """Post an event from another system

    A missed call, a website form or an e-mail: the person is found by phone or
    e-mail (or becomes a new contact), the day's business process opens or its task is
    updated by the same rule as for messages, and staff see it in the person's topic,
    e.g. "📞 Missed call from +79161234567 · line Sales · 14:05"."""
    event = call.body(EventIn)
    settings = call.gateway.settings
    try:
        phone = (
            normalise_phone(event.phone, settings.contacts.default_region) if event.phone else None
        )
    except InvalidIdentity as exc:
        raise invalid(["body", "phone"], str(exc)) from None
    try:
        email = normalise_email(event.email) if event.email else None
    except InvalidIdentity as exc:
        raise invalid(["body", "email"], str(exc)) from None
    if event.account is not None and settings.channel(event.account) is None:
        raise invalid(["body", "account"], f"no channel account {event.account!r}")
    now = call.now
    at: datetime = event.at or now
    text = describe(
        event.type,
        at,
        settings.zone,
        phone=phone,
        email=email,
        name=event.name,
        line=event.line,
        subject=event.subject,
        body=event.text,
    )
    key = f"{call.actor}:{event.type}:{event.id}"
    inbound = InboundExternal(
        key=key,
        event=event.type,
        sender=sender_of(event.name, phone, email),
        phone=phone,
        email=email,
        text=text,
        account=AccountId(event.account) if event.account else None,
        occurred_at=at,
        received_at=now,
    )
    gateway = call.gateway
    added = await gateway.bus.publish_once(
        keys.INBOUND, routing_key(inbound), key, inbound.model_dump_json()
    )
    result = "accepted" if added else "duplicate"
    gateway.metrics.inbound.labels(Channel.API.value, "api", result).inc()
    return EventAccepted(id=key, duplicate=not added)
