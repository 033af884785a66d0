"""The emulated WhatsApp: numbers, tokens, customers, templates, conversations, clock.

A business phone number (:class:`~.models.Number`) belongs to a WhatsApp Business
Account and may be used with the bearer tokens given to it. Its conversations are keyed
by the customer's ``wa_id``. The world has its own clock (real time plus an offset that
tests move with ``advance``), because the 24-hour customer service window and media URL
expiry are measured on it.

Everything that happens — messages in both directions, status changes, read marks —
goes to :class:`WhatsAppFeed` for the console and ``wait_for``; what Meta would push to a
webhook is handed to :class:`~.webhooks.WebhookDelivery` here, in :meth:`post_messages`
and :meth:`set_status`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from ..common.feed import Feed
from .media import MediaStore
from .models import (
    WINDOW_SECONDS,
    Call,
    GraphError,
    JsonDict,
    Message,
    Number,
    Template,
    User,
    digits_of,
    graph_error,
    no_object,
)
from .webhooks import WebhookDelivery

STATUS_ORDER = ("accepted", "sent", "delivered", "read")


class WhatsAppFeed(Feed):
    """What happened in the conversations, for the console and ``wait_for``. Messages
    are in their :meth:`~.models.Message.brief` form (JSON-able)."""

    def emit(self, kind: str, phone_number_id: str, wa_id: str, **fields: Any) -> JsonDict:
        """Record ``kind`` (message, status, read_mark) in a conversation."""
        return self.record(kind, {"phone_number_id": phone_number_id, "wa_id": wa_id}, fields)


class WhatsAppWorld:
    """All state of one emulator."""

    def __init__(self, base_url: Callable[[], str], delivery: WebhookDelivery) -> None:
        self.base_url = base_url
        self.delivery = delivery
        self.numbers: dict[str, Number] = {}
        self.users: dict[str, User] = {}
        self.templates: dict[tuple[str, str], Template] = {}
        self.conversations: dict[tuple[str, str], list[Message]] = {}
        self.messages: dict[str, Message] = {}
        self.last_inbound: dict[tuple[str, str], float] = {}
        self.calls: list[Call] = []
        self.feed = WhatsAppFeed()
        self.offset = 0.0
        self.auto_deliver = True
        """Business messages become ``delivered`` right after ``sent``."""
        self.window_errors = "sync"
        """How a message outside the 24-hour window fails: ``sync`` (error 131047 in the
        answer) or ``async`` (accepted, then a ``failed`` status with 131047)."""
        self.pair_limit: int | None = None
        """Messages to one customer within 6 seconds before error 131056 (``None``: no limit)."""
        self.media = MediaStore(base_url, self.now)
        self._next_user = 79160000001

    # --- clock ----------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's clock (Unix seconds): real time plus what ``advance`` added."""
        return time.time() + self.offset

    # --- accounts -------------------------------------------------------------------------

    def number(self, phone_number_id: str) -> Number:
        """A business number by id (``ValueError`` when unknown)."""
        number = self.numbers.get(phone_number_id)
        if number is None:
            raise ValueError(f"unknown phone number id {phone_number_id}")
        return number

    def authenticate(self, token: str | None, node: str, method: str = "post") -> Number:
        """The number ``node`` if ``token`` may use it: error 190 for a missing or unknown
        token, 100/33 for a number that does not exist or is not the token's."""
        if not token:
            raise GraphError(
                190,
                "An access token is required to request this resource.",
                http_status=401,
                title="Access token required",
            )
        if not any(token in n.tokens for n in self.numbers.values()):
            raise graph_error(190)
        number = self.numbers.get(node)
        if number is None or token not in number.tokens:
            raise no_object(node, method)
        return number

    def token_numbers(self, token: str | None) -> list[Number]:
        """Numbers a token may use (error 190 when none)."""
        if not token:
            raise GraphError(
                190,
                "An access token is required to request this resource.",
                http_status=401,
                title="Access token required",
            )
        numbers = [n for n in self.numbers.values() if token in n.tokens]
        if not numbers:
            raise graph_error(190)
        return numbers

    def create_user(self, name: str, wa_id: str | None) -> User:
        """Register a customer (a free number when ``wa_id`` is ``None``)."""
        if wa_id is None:
            while str(self._next_user) in self.users:
                self._next_user += 1
            wa_id = str(self._next_user)
        wa_id = digits_of(wa_id)
        if not wa_id.isdigit() or not 7 <= len(wa_id) <= 15:
            raise ValueError("a wa_id is the phone number's 7 to 15 digits, without '+'")
        if wa_id in self.users:
            raise ValueError(f"user {wa_id} already exists")
        user = User(wa_id, name)
        self.users[wa_id] = user
        return user

    def user(self, wa_id: str) -> User:
        """A customer by ``wa_id`` (``ValueError`` when unknown)."""
        user = self.users.get(wa_id)
        if user is None:
            raise ValueError(f"unknown user {wa_id}")
        return user

    def template(self, name: str, language: str) -> Template:
        """An approved template, or the error Meta answers for this name and language."""
        template = self.templates.get((name, language))
        details = f"template name ({name}) does not exist in {language}"
        if template is None or template.status in ("PENDING", "REJECTED"):
            raise graph_error(132001, details)
        if template.status == "PAUSED":
            raise graph_error(132015)
        if template.status == "DISABLED":
            raise graph_error(132016)
        return template

    # --- conversations --------------------------------------------------------------------

    def conversation(self, phone_number_id: str, wa_id: str) -> list[Message]:
        """The messages with one customer, oldest first (a live list)."""
        return self.conversations.setdefault((phone_number_id, wa_id), [])

    def add_message(self, message: Message) -> Message:
        """Store a new message and announce it in the feed."""
        self.conversation(message.phone_number_id, message.wa_id).append(message)
        self.messages[message.id] = message
        if message.direction == "in":
            self.last_inbound[(message.phone_number_id, message.wa_id)] = self.now()
        self.feed.emit("message", message.phone_number_id, message.wa_id, message=message.brief())
        return message

    def in_window(self, phone_number_id: str, wa_id: str) -> bool:
        """Whether free-form messages to the customer are allowed now."""
        last = self.last_inbound.get((phone_number_id, wa_id))
        return last is not None and self.now() - last < WINDOW_SECONDS

    # --- webhooks -------------------------------------------------------------------------

    def post_messages(self, number: Number, messages: list[tuple[User, JsonDict]]) -> None:
        """Push customers' messages in one webhook (``contacts`` once per customer)."""
        contacts: list[JsonDict] = []
        for user, _ in messages:
            if not any(c["wa_id"] == user.wa_id for c in contacts):
                contacts.append({"profile": {"name": user.name}, "wa_id": user.wa_id})
        value = {"contacts": contacts, "messages": [m for _, m in messages]}
        self.delivery.deliver(number, value, "messages")

    def set_status(
        self, message: Message, status: str, errors: list[JsonDict] | None = None
    ) -> None:
        """Move a business message to ``status`` and push the status webhook. A status
        never goes back (``read`` after ``read`` is ignored); ``failed`` is final."""
        if message.status == "failed" or (
            status in STATUS_ORDER
            and message.status in STATUS_ORDER
            and STATUS_ORDER.index(status) <= STATUS_ORDER.index(message.status)
        ):
            return
        number = self.number(message.phone_number_id)
        stamp = str(int(self.now()))
        item: JsonDict = {
            "id": message.id,
            "status": status,
            "timestamp": stamp,
            "recipient_id": message.wa_id,
        }
        if status in ("sent", "delivered"):
            item.update(self._pricing(message, with_expiry=status == "sent"))
        if errors:
            item["errors"] = errors
        message.status = status
        message.statuses.append({"status": status, "timestamp": stamp})
        message.errors.extend(errors or [])
        self.delivery.deliver(number, {"statuses": [item]}, "statuses")
        self.feed.emit("status", number.id, message.wa_id, message=message.brief())

    def _pricing(self, message: Message, *, with_expiry: bool) -> JsonDict:
        category = "service"
        if message.template is not None:
            category = str(message.template.get("category", "utility")).lower()
        key = f"{message.phone_number_id}:{message.wa_id}".encode()
        conversation: JsonDict = {"id": hashlib.sha256(key).hexdigest()[:32]}
        if with_expiry:
            conversation["expiration_timestamp"] = str(int(self.now()) + WINDOW_SECONDS)
        conversation["origin"] = {"type": category}
        pricing = {"billable": True, "pricing_model": "CBP", "category": category}
        return {"conversation": conversation, "pricing": pricing}

    def close(self) -> None:
        """Release console waiters."""
        self.feed.close()
