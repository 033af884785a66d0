"""Outbound jobs: what the worker asks delivery to do, as durable stream entries.

Every job has an ``out_id`` derived from the event that caused it, so the same inbound
event handled twice (after a crash) yields the same job, which delivery sends once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from gateway.model import (
    Button,
    ContactId,
    Content,
    Destination,
    InboundMessage,
    Mention,
    MessageId,
)
from gateway.store import keys


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
    mentions: tuple[Mention, ...] = ()
    """Operators named in ``text`` who get notified (an assignment)."""
    line: str | None = None
    """Post in the contact's topic of this line (``None``: of its current line)."""
    link_line: str | None = None
    """Append a link to the contact's topic in this line (looked up when sent: a move's
    notices link the two topics, one of which the other notice makes)."""


class StaffGeneral(_Job):
    """A message from the gateway in the staff group's General topic (``contact_id`` is
    only the partition key: ``general``)."""

    type: Literal["staff.general"] = "staff.general"
    text: str
    reply_to: MessageId | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    edit: MessageId | None = None
    """Replace this message of the bot (a /find page) instead of sending a new one."""
    chat: str | None = None
    """The staff group (a line's) to post in, or an operator's private chat with the
    bot; ``None``: the default line's group."""
    thread: int | None = None
    """A topic of the staff group to post in (``None``: General, or ``chat``)."""
    link_topic: bool = False
    """Append a link to ``contact_id``'s topic (looked up when sent: queued in the
    contact's partition, after the message that opens the topic)."""


class StaffReminder(_Job):
    """Remind the topic that the customer waits past the deadline. Delivery adds the
    buttons ([Go to task] [Go to chat] links, [Mark read] [Dismiss]) and replaces the
    contact's previous reminder, so a topic shows at most one."""

    type: Literal["staff.reminder"] = "staff.reminder"
    text: str
    mentions: tuple[Mention, ...] = ()


class StaffDelete(_Job):
    """Delete a message the staff bot sent in the group (a dismissed reminder)."""

    type: Literal["staff.delete"] = "staff.delete"
    message_id: MessageId


class StaffReact(_Job):
    """Set the staff bot's reaction on a message in the topic (delivery marks, the
    customer's own reactions); ``emoji`` empty: take it away."""

    type: Literal["staff.react"] = "staff.react"
    message_id: MessageId
    emoji: str
    chat: str | None = None
    """The staff group the message is in (``None``: the contact's current line's)."""


class StaffCloseTopic(_Job):
    """Close the contact's topic (it was merged into another contact's)."""

    type: Literal["staff.close_topic"] = "staff.close_topic"


class StaffCard(_Job):
    """Show the contact's current task card in its topic: edit it, or post and pin it."""

    type: Literal["staff.card"] = "staff.card"


class CallbackAnswer(_Job):
    """Answer a button press (a toast, or an alert): an operator's, or a customer's (a
    satisfaction survey's button), so their client stops showing a spinner."""

    type: Literal["staff.callback"] = "staff.callback"
    callback_id: str
    text: str
    alert: bool = False
    destination: Destination | None = None
    """A customer's press: their chat, and the account whose bot got it (``None``: an
    operator's, answered by the staff bot)."""


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


class CustomerEdit(_Job):
    """An operator edited their reply in the topic: edit the customer's copy where the
    messenger can, else send the correction as a new message."""

    type: Literal["customer.edit"] = "customer.edit"
    content: Content
    staff_chat: str
    staff_message: MessageId
    """The operator's message (its customer copy is looked up when delivered: the
    send itself is ahead in the same queue)."""


class CustomerDelete(_Job):
    """``/delete`` on an operator's reply: remove the customer's copy where the
    messenger can, or say why not."""

    type: Literal["customer.delete"] = "customer.delete"
    staff_chat: str
    staff_message: MessageId
    command: MessageId
    """The ``/delete`` message, which the answer replies to."""


class CustomerReact(_Job):
    """An operator reacted to the customer's message in the topic: show the customer
    the same reaction where the messenger can, else the fallback
    (``delivery.reactions_as_text``); ``emoji`` empty: the reaction was taken back."""

    type: Literal["customer.react"] = "customer.react"
    staff_chat: str
    staff_message: MessageId
    """The topic's copy of the customer's message (theirs is looked up when delivered)."""
    emoji: str


class CustomerAuto(_Job):
    """A message the gateway sends the customer by itself (greeting, away message);
    staff see a note of it in the topic once it is sent."""

    type: Literal["customer.auto"] = "customer.auto"
    destination: Destination
    content: Content
    what: str
    """What it is, for the note in the topic ("greeting", "away message")."""
    noted: bool = True
    """Note it in the topic once sent (not for a banned person's reply: their topic
    stays quiet)."""


class CustomerRead(_Job):
    """Tell the customer's messenger their messages were read (where it supports read
    receipts); ``message_id`` is their latest message."""

    type: Literal["customer.read"] = "customer.read"
    destination: Destination
    message_id: MessageId


Job = Annotated[
    StaffPost
    | StaffEdit
    | StaffNotice
    | StaffGeneral
    | StaffReminder
    | StaffDelete
    | StaffReact
    | StaffCloseTopic
    | StaffCard
    | CallbackAnswer
    | CustomerSend
    | CustomerEdit
    | CustomerDelete
    | CustomerReact
    | CustomerAuto
    | CustomerRead,
    Field(discriminator="type"),
]
JOB: TypeAdapter[Job] = TypeAdapter(Job)


def family(job: _Job) -> str:
    """The outbound stream family a job goes to: what customers receive is ordered
    per contact apart from what staff see, so a slow topic never delays a reply."""
    customer = (
        CustomerSend | CustomerEdit | CustomerDelete | CustomerReact | CustomerAuto | CustomerRead
    )
    if isinstance(job, CallbackAnswer) and job.destination is not None:
        return keys.CUSTOMER_OUT  # a customer's press: never behind the staff group's budget
    return keys.CUSTOMER_OUT if isinstance(job, customer) else keys.STAFF_OUT
