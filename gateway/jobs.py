"""Outbound jobs: what the worker asks delivery to do, as durable stream entries.

Every job has an ``out_id`` derived from the event that caused it, so the same inbound
event handled twice (after a crash) yields the same job, which delivery sends once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from gateway.model import Button, ContactId, Content, Destination, InboundMessage, MessageId


class _Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    out_id: str
    contact_id: ContactId


class StaffPost(_Job):
    """Show a customer's message in the contact's staff topic."""

    type: Literal["staff.post"] = "staff.post"
    message: InboundMessage


class StaffEdit(_Job):
    """The customer edited a message: update its staff copy."""

    type: Literal["staff.edit"] = "staff.edit"
    message: InboundMessage


class StaffNotice(_Job):
    """A note from the gateway itself in the contact's topic (e.g. a delivery failure)."""

    type: Literal["staff.notice"] = "staff.notice"
    text: str
    reply_to: MessageId | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()


class StaffGeneral(_Job):
    """A message from the gateway in the staff group's General topic (``contact_id`` is
    only the partition key: ``general``)."""

    type: Literal["staff.general"] = "staff.general"
    text: str
    reply_to: MessageId | None = None


class StaffCard(_Job):
    """Show the contact's current task card in its topic: edit it, or post and pin it."""

    type: Literal["staff.card"] = "staff.card"


class CallbackAnswer(_Job):
    """Answer an operator's button press (a toast, or an alert)."""

    type: Literal["staff.callback"] = "staff.callback"
    callback_id: str
    text: str
    alert: bool = False


class CustomerSend(_Job):
    """An operator's reply to deliver to the customer."""

    type: Literal["customer.send"] = "customer.send"
    destination: Destination
    content: Content
    staff_chat: str
    staff_message: MessageId
    """The operator's message in the topic (linked to the customer's copy)."""
    operator_id: str
    created_at: float


Job = Annotated[
    StaffPost | StaffEdit | StaffNotice | StaffGeneral | StaffCard | CallbackAnswer | CustomerSend,
    Field(discriminator="type"),
]
JOB: TypeAdapter[Job] = TypeAdapter(Job)
