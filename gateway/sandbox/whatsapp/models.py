"""Records of the emulated WhatsApp Business Cloud API: numbers, people, templates,
messages, Graph API errors and call records.

Everything here is plain data; behaviour lives in :mod:`.state` (the world), the API
handlers and the people's actions. Shapes follow Meta's Cloud API reference
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages and the
``messages`` webhook reference).
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import string
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

JsonDict = dict[str, Any]

DEFAULT_WABA_ID = "102290129340398"
"""The WhatsApp Business Account id Meta's own docs use in examples."""
WINDOW_SECONDS = 24 * 3600
"""The customer service window: free-form messages only within 24 h of the customer's
last message (https://developers.facebook.com/docs/whatsapp/pricing#customer-service-windows)."""
PAIR_WINDOW = 6.0
"""Meta allows about one message every 6 seconds to the same user (bursts aside) before
error 131056; ``pair_limit`` counts messages within this many seconds."""
MAX_TEXT = 4096
MAX_CAPTION = 1024
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


class GraphError(Exception):
    """A Graph API error, answered as ``{"error": {...}}`` with an HTTP error status.

    ``message`` is the whole ``error.message`` (Meta prefixes WhatsApp codes with
    ``(#code)``); ``details`` goes to ``error.error_data.details``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        details: str | None = None,
        http_status: int = 400,
        subcode: int | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or message
        self.http_status = http_status
        self.subcode = subcode
        self.title = title or message

    def body(self) -> JsonDict:
        """The answer's JSON body."""
        error: JsonDict = {"message": self.message, "type": "OAuthException", "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}

    def webhook_error(self) -> JsonDict:
        """The ``errors[]`` item of a ``failed`` status webhook."""
        return {
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": {"details": self.details},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }


ERRORS: dict[int, tuple[str, str, int]] = {
    0: ("AuthException", "We were unable to authenticate the app user.", 401),
    2: ("API Service", "Temporary due to downtime or due to being overloaded.", 503),
    100: (
        "Invalid parameter",
        "The request included one or more unsupported or misspelled parameters.",
        400,
    ),
    190: (
        "Invalid OAuth access token - Cannot parse access token",
        "Your access token is invalid or has expired.",
        401,
    ),
    2200: ("Callback verification failed", "The callback URL could not be verified.", 400),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached.", 429),
    131000: ("Something went wrong", "Message failed to send due to an unknown error.", 500),
    131009: ("Parameter value is not valid", "One or more parameter values are invalid.", 400),
    131021: (
        "Recipient cannot be sender",
        "Sender and recipient phone number is the same.",
        400,
    ),
    131026: (
        "Message undeliverable",
        "Unable to deliver message. Reasons can include: the recipient phone number is not "
        "a WhatsApp phone number; the recipient has not accepted the new terms of service; "
        "the recipient is using an old WhatsApp version.",
        400,
    ),
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
        400,
    ),
    131051: ("Unsupported message type", "Message type is not currently supported.", 400),
    131052: ("Media download error", "Unable to download the media sent by the user.", 400),
    131053: ("Media upload error", "Unable to upload the media used in the message.", 400),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Too many messages sent from the sender phone number to the same recipient phone "
        "number in a short period of time.",
        400,
    ),
    132000: (
        "Number of parameters does not match the expected number of params",
        "The number of variable parameter values included in the request did not match the "
        "number of variable parameters defined in the template.",
        400,
    ),
    132001: (
        "Template name does not exist in the translation",
        "The template does not exist in the specified language or the template has not been "
        "approved.",
        400,
    ),
    132015: ("Template is Paused", "Template is paused due to low quality.", 400),
    132016: ("Template is Disabled", "Template has been paused too many times.", 400),
}
"""Code → (title, default details, HTTP status) of the errors the emulator produces, as
listed in https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes."""


def graph_error(
    code: int, details: str | None = None, *, http_status: int | None = None
) -> GraphError:
    """The error ``code`` in Meta's words; ``details`` replaces the default details."""
    title, default, status = ERRORS.get(code, (f"Error {code}", f"Error {code}", 400))
    message = title if code in (0, 190) else f"(#{code}) {title}"
    return GraphError(
        code,
        message,
        details=details or default,
        http_status=http_status or status,
        title=title,
    )


def invalid(details: str) -> GraphError:
    """Error 100 with a precise message: what is wrong with which parameter."""
    return GraphError(100, f"(#100) {details}", details=details, title="Invalid parameter")


def required(name: str) -> GraphError:
    """Error 100 for a required parameter that was not sent."""
    return invalid(f"The parameter {name} is required.")


def no_object(node: str, method: str = "get") -> GraphError:
    """Error 100/33: an id that does not exist or that this token may not use."""
    return GraphError(
        100,
        f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        subcode=33,
        title="Invalid parameter",
    )


def fbtrace_id() -> str:
    """A random trace id like Meta's (support reference of one request)."""
    alphabet = string.ascii_letters + string.digits
    return "A" + "".join(secrets.choice(alphabet) for _ in range(22))


def wamid(wa_id: str, *, inbound: bool) -> str:
    """A message id shaped like Meta's: ``wamid.`` + base64 of a small binary record
    holding the customer's number and a random hex id (20 characters for messages the
    customer sent, 18 for the business's)."""
    digits = wa_id.encode()[:60]
    marker, size = (b"\x12", 20) if inbound else (b"\x11", 18)
    serial = secrets.token_hex(size // 2).upper().encode()
    raw = b"\x1c\x18" + bytes([len(digits)]) + digits + b"\x15\x02\x00" + marker
    raw += b"\x18" + bytes([size]) + serial + b"\x00"
    return "wamid." + base64.b64encode(raw).decode()


def digits_of(phone: str) -> str:
    """``phone`` without ``+``, spaces, dashes and brackets (how ``wa_id`` looks)."""
    return re.sub(r"[\s+\-().]", "", phone)


class Call(NamedTuple):
    """One Graph API request as received (the access token is never recorded)."""

    method: str
    """HTTP method."""
    endpoint: str
    """``messages``, ``media``, ``media_get``, ``media_delete``, ``download``,
    ``number`` (GET a phone number) or ``number_update`` (POST to it)."""
    version: str
    """The Graph API version of the path (``v21.0``); ``""`` for media downloads."""
    node: str
    """The phone number id or media id of the path."""
    body: JsonDict
    """JSON body, form fields (file parts as ``{"filename", "size"}``) or query."""


@dataclass
class Subscription:
    """Where a number's webhooks go and how they are signed."""

    url: str
    verify_token: str
    app_secret: str


@dataclass
class Number:
    """A business phone number of a WhatsApp Business Account."""

    id: str
    display_phone_number: str
    """Digits only, as in webhook ``metadata``."""
    waba_id: str
    verified_name: str
    app_secret: str
    """The secret of the app the tokens belong to; signs webhooks of subscriptions made
    through the API (``webhook_configuration``)."""
    tokens: set[str] = field(default_factory=set)
    subscription: Subscription | None = None
    read_marks: list[JsonDict] = field(default_factory=list)
    pair_sends: dict[str, deque[float]] = field(default_factory=dict)
    """Per customer: emulator-clock times of recent sends (for ``pair_limit``)."""

    def metadata(self) -> JsonDict:
        """The webhook ``value.metadata`` object."""
        return {"display_phone_number": self.display_phone_number, "phone_number_id": self.id}

    def info(self) -> JsonDict:
        """``GET /{phone_number_id}``."""
        data: JsonDict = {
            "verified_name": self.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": f"+{self.display_phone_number}",
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": self.id,
        }
        if self.subscription is not None:
            data["webhook_configuration"] = {"phone_number": self.subscription.url}
        return data


@dataclass
class User:
    """A WhatsApp user (a customer)."""

    wa_id: str
    name: str


@dataclass
class Template:
    """A message template of the WhatsApp Business Account."""

    name: str
    language: str
    body: str
    status: str = "APPROVED"
    category: str = "UTILITY"

    @property
    def param_count(self) -> int:
        """How many ``{{n}}`` variables the body has."""
        return len({match[1] for match in PLACEHOLDER.finditer(self.body)})

    def render(self, params: list[str]) -> str:
        """The body with ``{{n}}`` replaced by the n-th parameter."""

        def substitute(match: re.Match[str]) -> str:
            index = int(match[1]) - 1
            return params[index] if 0 <= index < len(params) else match[0]

        return PLACEHOLDER.sub(substitute, self.body)


@dataclass
class Message:
    """A message of a conversation between a business number and a customer."""

    id: str
    direction: str
    """``in`` (the customer's) or ``out`` (the business's)."""
    phone_number_id: str
    wa_id: str
    type: str
    timestamp: int
    payload: JsonDict = field(default_factory=dict)
    """The type object as sent (``{"body": ...}`` for text, ``{"id"|"link", ...}`` for
    media, ``[...]`` contacts under ``"contacts"``)."""
    text: str | None = None
    """Text body, caption, rendered template or interactive body text."""
    context: JsonDict | None = None
    """``{"from", "id"}`` of the quoted message."""
    status: str | None = None
    """Business messages: ``accepted``, ``sent``, ``delivered``, ``read`` or ``failed``."""
    statuses: list[JsonDict] = field(default_factory=list)
    errors: list[JsonDict] = field(default_factory=list)
    media: bytes | None = None
    media_id: str | None = None
    mime_type: str | None = None
    filename: str | None = None
    template: JsonDict | None = None
    """``{"name", "language", "params", "category"}`` of template messages."""
    read_by_business: bool = False

    def view(self) -> JsonDict:
        """The inspection view (tests): everything, media as bytes."""
        return {
            "direction": self.direction,
            "id": self.id,
            "type": self.type,
            "timestamp": self.timestamp,
            "wa_id": self.wa_id,
            "body": self.text if self.type not in _CAPTIONED else None,
            "caption": self.text if self.type in _CAPTIONED else None,
            "payload": copy.deepcopy(self.payload),
            "media": self.media,
            "media_id": self.media_id,
            "mime_type": self.mime_type,
            "filename": self.filename,
            "template": copy.deepcopy(self.template),
            "context": copy.deepcopy(self.context),
            "status": self.status,
            "statuses": copy.deepcopy(self.statuses),
            "errors": copy.deepcopy(self.errors),
            "read_by_business": self.read_by_business,
        }

    def brief(self) -> JsonDict:
        """The view for JSON (the console's feed): media bytes replaced by their size."""
        data = self.view()
        media = data.pop("media")
        data["size"] = len(media) if media is not None else None
        return data


_CAPTIONED = frozenset({"image", "video", "document", "audio", "sticker"})
