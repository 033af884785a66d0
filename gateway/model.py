"""The unified, frozen message model every messenger is normalised into.

Adapters translate platform payloads into these types and back; the core only ever
sees these. Ids are ``NewType``s so that a Telegram chat id cannot be passed where a
contact id belongs (mypy catches it). Everything is a frozen pydantic model because
events cross process boundaries through Redis streams as JSON.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

AccountId = NewType("AccountId", str)
"""A channel account from the config (``channels[].id``), e.g. ``tg_shop``."""
PlatformUserId = NewType("PlatformUserId", str)
"""The sender's id on its platform, as a string (Viber ids are not numbers)."""
ChatId = NewType("ChatId", str)
"""A conversation id on its platform, as a string (Telegram ids exceed 2**53 soon)."""
MessageId = NewType("MessageId", str)
"""A message id on its platform, as a string."""
ContactId = NewType("ContactId", str)
"""The gateway's own id of a person, stable across messengers."""
TopicId = NewType("TopicId", int)
"""A Telegram forum topic (``message_thread_id``) in the staff group."""

CALLBACK_DATA_LIMIT = 64
"""Bytes of a button's callback data (https://core.telegram.org/bots/api#inlinekeyboardbutton)."""


class Channel(StrEnum):
    TELEGRAM = "telegram"
    VK = "vk"
    VIBER = "viber"
    WHATSAPP = "whatsapp"
    WEBCHAT = "webchat"
    """The chat widget on the company's website (:mod:`adapters.webchat`)."""
    API = "api"
    """Other systems through ``POST /api/v1/events``: a telephony line, a website form,
    a mailbox. Nothing can be sent back through it."""


class Kind(StrEnum):
    """What a message is. Everything a platform can send maps to one of these."""

    TEXT = "text"
    PHOTO = "photo"
    DOCUMENT = "document"
    AUDIO = "audio"
    VOICE = "voice"
    VIDEO = "video"
    VIDEO_NOTE = "video_note"
    ANIMATION = "animation"
    STICKER = "sticker"
    LOCATION = "location"
    VENUE = "venue"
    CONTACT = "contact"
    POLL = "poll"
    UNSUPPORTED = "unsupported"


MEDIA_KINDS = frozenset(
    {
        Kind.PHOTO,
        Kind.DOCUMENT,
        Kind.AUDIO,
        Kind.VOICE,
        Kind.VIDEO,
        Kind.VIDEO_NOTE,
        Kind.ANIMATION,
        Kind.STICKER,
    }
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Attachment(_Frozen):
    """A file as the platform knows it; bytes are fetched only when needed.

    ``file_id`` is valid only with the account that received it (Telegram file ids are
    per bot), so the account travels with it.
    """

    account: AccountId
    file_id: str
    file_unique_id: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    emoji: str | None = None


class Location(_Frozen):
    latitude: float
    longitude: float


class Venue(_Frozen):
    location: Location
    title: str
    address: str


class SharedContact(_Frozen):
    phone: str
    first_name: str
    last_name: str | None = None
    user_id: str | None = None


class Button(_Frozen):
    """An inline button: ``data`` comes back in an :class:`InboundCallback` when pressed
    (at most 64 bytes, as Telegram allows); a ``url`` button opens a link instead."""

    text: str
    data: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Button:
        if (self.data is None) == (self.url is None):
            raise ValueError("a button has exactly one of data and url")
        if self.data is not None and not 1 <= len(self.data.encode()) <= CALLBACK_DATA_LIMIT:
            raise ValueError(f"button data must be 1-{CALLBACK_DATA_LIMIT} bytes")
        return self


class Mention(_Frozen):
    """``text[offset:offset + length]`` names a staff member, who gets notified.

    Offsets count Python characters; adapters convert them to their platform's units
    (Telegram counts UTF-16 code units).
    """

    offset: int = Field(ge=0)
    length: int = Field(ge=1)
    user_id: PlatformUserId


class Style(_Frozen):
    """Formatting of ``text[offset:offset + length]`` (Python characters, like
    :class:`Mention`): what Telegram's entities and WhatsApp's markup have in common.
    Adapters convert it to their platform's form or spell it out in plain text
    (:mod:`adapters.markup`)."""

    kind: Literal[
        "bold", "italic", "underline", "strike", "spoiler", "code", "pre", "link", "quote"
    ]
    offset: int = Field(ge=0)
    length: int = Field(ge=1)
    url: str | None = None
    """A link's target."""
    language: str | None = None
    """A code block's language."""


class Template(_Frozen):
    """A message template the platform approved in advance (WhatsApp: the only thing a
    business may send more than 24 hours after the customer last wrote)."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()


class Content(_Frozen):
    """The payload of a message, independent of who sends it where."""

    kind: Kind
    text: str | None = None
    """Text of a text message, or the caption of a media message."""
    attachment: Attachment | None = None
    location: Location | None = None
    venue: Venue | None = None
    contact: SharedContact | None = None
    media_group_id: str | None = None
    """Album id: items of one album share it (Telegram sends them as separate updates)."""
    buttons: tuple[tuple[Button, ...], ...] = ()
    """Rows of inline buttons under the message (staff side: task cards, choices)."""
    mentions: tuple[Mention, ...] = ()
    """Staff members named in ``text`` (staff side: reminders)."""
    template: Template | None = None
    """Send this approved template (``text`` is its rendered preview, for history)."""
    styles: tuple[Style, ...] = ()
    """Bold, italic, links … of ``text``, as the sender wrote them."""

    def prefixed(self, head: str) -> Content:
        """``head`` on a line before the text; styles keep to their characters."""
        shift = len(head) + 1 if self.text else len(head)
        styles = tuple(s.model_copy(update={"offset": s.offset + shift}) for s in self.styles)
        text = f"{head}\n{self.text}" if self.text else head
        return self.model_copy(update={"text": text, "styles": styles})


class Sender(_Frozen):
    """Who wrote, as the platform identifies them."""

    account: AccountId
    channel: Channel
    user_id: PlatformUserId
    chat_id: ChatId
    display_name: str
    username: str | None = None
    language: str | None = None
    phone: str | None = None
    email: str | None = None
    """The sender's own e-mail, where the platform knows it (the website chat's form)."""
    is_bot: bool = False


class InboundMessage(_Frozen):
    """A message (or an edit of one) received from a messenger or the staff group.

    ``key`` is the platform idempotency key (see ``adapters``): a redelivered or retried
    event has the same key and is processed once.
    """

    type: Literal["message"] = "message"
    key: str
    sender: Sender
    message_id: MessageId
    sent_at: datetime
    received_at: datetime
    content: Content
    reply_to: MessageId | None = None
    quoted: str | None = None
    """The quoted message's text as the platform sent it along (Telegram, VK): shown in
    the topic when the quoted message has no copy there."""
    edited: bool = False
    thread_id: int | None = None
    """Forum topic of a staff-group message (``None`` outside topics)."""
    is_topic_message: bool = False
    group_chat: bool = False
    """Written in a group (the staff group, or a group a customer bot was added to)."""


class InboundCallback(_Frozen):
    """Someone pressed an inline button."""

    type: Literal["callback"] = "callback"
    key: str
    sender: Sender
    callback_id: str
    data: str
    message_id: MessageId
    """The message that carries the button."""
    thread_id: int | None = None
    received_at: datetime


class InboundStatus(_Frozen):
    """The customer allowed or denied messages from the account (VK ``message_allow`` /
    ``message_deny``, Viber ``subscribed`` / ``unsubscribed``): staff see it in the topic,
    since replies cannot reach a customer who denied them."""

    type: Literal["status"] = "status"
    key: str
    sender: Sender
    allowed: bool
    received_at: datetime


class InboundReceipt(_Frozen):
    """What became of a message sent to the customer (Viber ``delivered``/``seen``/
    ``failed``, WhatsApp statuses); ``message_id`` is the id the send returned."""

    type: Literal["receipt"] = "receipt"
    key: str
    sender: Sender
    message_id: MessageId
    status: Literal["delivered", "seen", "failed"]
    reason: str | None = None
    received_at: datetime


class Destination(_Frozen):
    """Where an outbound message goes on its platform."""

    account: AccountId
    chat_id: ChatId
    thread_id: int | None = None
    reply_to: MessageId | None = None


class Sent(_Frozen):
    """What the platform answered for a successful send."""

    message_ids: tuple[MessageId, ...] = Field(min_length=1)


class InboundExternal(_Frozen):
    """Something another system reported about a person (``POST /api/v1/events``): a
    missed call, a website form, an e-mail. It goes through the same rule as a message
    (the person's contact, the day's process, the task) and shows in their topic.

    ``sender`` is the person as the event knows them (``account`` ``api``, ``user_id``
    their phone or e-mail); ``account`` is the channel account whose rules apply
    (working hours, responsible), if the client named one."""

    type: Literal["external"] = "external"
    key: str
    event: Literal["missed_call", "form", "email"]
    sender: Sender
    phone: str | None = None
    """E.164."""
    email: str | None = None
    """Normalised."""
    text: str
    """What staff see in the topic (built from the event's fields)."""
    account: AccountId | None = None
    occurred_at: datetime
    received_at: datetime


class InboundReaction(_Frozen):
    """The customer reacted to a message (WhatsApp ``reaction``); ``emoji`` empty: they
    took their reaction back. ``message_id`` is the platform's id of the message."""

    type: Literal["reaction"] = "reaction"
    key: str
    sender: Sender
    message_id: MessageId
    emoji: str
    received_at: datetime


InboundEvent = (
    InboundMessage
    | InboundCallback
    | InboundStatus
    | InboundReceipt
    | InboundReaction
    | InboundExternal
)
Inbound = Annotated[InboundEvent, Field(discriminator="type")]
"""Everything the inbound stream carries."""
INBOUND: TypeAdapter[InboundEvent] = TypeAdapter(Inbound)


class Contact(_Frozen):
    """A person, possibly known through several messengers."""

    id: ContactId
    display_name: str
    username: str | None = None
    channel: Channel
    account: AccountId
    first_seen: datetime
    kind: Literal["client", "lead"] = "client"
    """``lead``: not a customer yet (accounts with ``create_clients: false``)."""
