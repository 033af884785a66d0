"""Channel accounts (``channels[]``): one model per messenger, told apart by ``kind``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from gateway.config.integrations import CsatSettings
from gateway.config.sections import (
    GRAPH_API,
    VIBER_API,
    VK_API,
    TelegramEndpoint,
    WorkingHours,
    _Section,
)


class Responsible(_Section):
    """Who gets an account's new tasks: one operator, or a role with a strategy."""

    operator: int | None = None
    role: str | None = None
    strategy: Literal["round_robin", "least_busy", "broadcast"] = "round_robin"
    """``round_robin``: the next online member with room; ``least_busy``: the online
    member with the fewest open tasks; ``broadcast``: nobody is assigned, the role is
    told, and the first to take or reply owns it."""

    @model_validator(mode="after")
    def _one(self) -> Responsible:
        if (self.operator is None) == (self.role is None):
            raise ValueError("give exactly one of operator and role")
        return self


class _Account(_Section):
    """What every customer-facing account has, whatever its messenger."""

    working_hours: WorkingHours | None = None
    """Unset: always staffed (deadlines in plain time)."""
    responsible: Responsible | None = None
    """Unset: new tasks wait for whoever takes them."""
    away_message: str | None = Field(None, min_length=1, max_length=4096)
    """Sent to a customer who writes outside working hours, once per process."""
    greeting: str | None = Field(None, min_length=1, max_length=4096)
    """Sent to a customer with their first message ever (a new contact)."""
    department: str | None = None
    """The department (``staff.departments``) whose head hears of this account's
    tasks nobody takes in time (``sla.take_within_minutes``)."""
    priority: int = Field(0, ge=-60, le=60)
    """When the staff group's sending budget is short, this account's customers'
    messages go ahead of others that have waited up to this many minutes longer
    (negative: behind). Topics otherwise take turns in order of waiting."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    title: str | None = None
    close_reasons: tuple[str, ...] = ()
    """Reasons operators choose from when closing a task of this account (empty: free text)."""
    require_close_reason: bool = False
    create_clients: bool = True
    """New senders become ``client`` contacts; ``false``: ``lead`` (not a customer yet)."""
    csat: CsatSettings = CsatSettings()
    """Ask the customer to rate each closed task (off by default)."""


class TelegramChannel(TelegramEndpoint, _Account):
    kind: Literal["telegram"]


class VkChannel(_Account):
    """A VK community (https://dev.vk.com/ru/api/bots/getting-started)."""

    kind: Literal["vk"]
    token: SecretStr
    """The community access token (Manage community → API usage → Access tokens)."""
    group_id: int = Field(gt=0)
    mode: Literal["webhook", "polling"] = "polling"
    """``webhook``: the Callback API posts events to ``/webhook/vk/{id}``;
    ``polling``: the gateway reads the Bots Long Poll server."""
    secret: SecretStr | None = None
    """Callback API "secret key": VK puts it in every event; others are refused."""
    confirmation: str | None = None
    """The string the Callback API's ``confirmation`` event must be answered with;
    unset: asked from VK (``groups.getCallbackConfirmationCode``) at start."""
    api_server: AnyHttpUrl = AnyHttpUrl(VK_API)
    """VK API base URL (an emulator's in tests and the sandbox)."""
    api_version: str = Field("5.199", pattern=r"^5\.\d+$")

    @field_validator("api_version")
    @classmethod
    def _modern(cls, value: str) -> str:
        # Below 5.103 message_new.object is the message itself, not {message, client_info}.
        if int(value.split(".")[1]) < 103:
            raise ValueError("the gateway reads events of VK API 5.103 and later")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> VkChannel:
        if self.mode == "webhook" and self.secret is None:
            raise ValueError("webhook mode (Callback API) needs secret, as set in the community")
        return self


class ViberChannel(_Account):
    """A Viber bot (https://developers.viber.com/docs/api/rest-bot-api/). Viber only
    posts events to a webhook: set ``server.public_url`` (HTTPS)."""

    kind: Literal["viber"]
    token: SecretStr
    """The bot's authentication token (Viber Admin Panel)."""
    name: str = Field(min_length=1, max_length=28)
    """The sender name customers see on the bot's messages."""
    avatar: AnyHttpUrl | None = None
    """The sender picture (a public JPEG URL, under 100 KB)."""
    mode: Literal["webhook"] = "webhook"
    api_server: AnyHttpUrl = AnyHttpUrl(VIBER_API)
    min_api_version: int = Field(7, ge=1)
    """Messages ask for at least this Viber client API version (keyboards need 7+)."""
    welcome: str | None = Field(None, max_length=7000)
    """Sent when a customer opens the chat with the bot (before they subscribe)."""
    operator_as_sender: bool = False
    """Show the answering operator's name (from ``staff.operators``) as the sender of
    each reply instead of ``name``."""


class TemplateSettings(_Section):
    """An approved WhatsApp message template operators may send with ``/template``."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = "en_US"
    parameters: int = Field(0, ge=0, le=20)
    """How many ``{{n}}`` placeholders its body has."""
    text: str | None = None
    """The body as approved, with ``{{1}}``…: shown to staff and kept in history."""


class WhatsAppChannel(_Account):
    """A WhatsApp Business phone number on the Cloud API
    (https://developers.facebook.com/docs/whatsapp/cloud-api/)."""

    kind: Literal["whatsapp"]
    token: SecretStr
    """A system user's access token with ``whatsapp_business_messaging``."""
    phone_number_id: str = Field(pattern=r"^\d+$")
    app_secret: SecretStr
    """The Meta app's secret: webhooks are signed with it (``X-Hub-Signature-256``)."""
    verify_token: SecretStr
    """Any string; the same as entered for the webhook in the app dashboard."""
    mode: Literal["webhook"] = "webhook"
    api_server: AnyHttpUrl = AnyHttpUrl(GRAPH_API)
    api_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$")
    templates: tuple[TemplateSettings, ...] = ()


class WebchatForm(_Section):
    """What the chat asks a visitor before (or, outside working hours, instead of)
    chatting; a phone or e-mail joins them to the contact that has it."""

    fields: tuple[Literal["name", "phone", "email"], ...] = ("name",)
    required: tuple[Literal["name", "phone", "email"], ...] = ()

    @model_validator(mode="after")
    def _asked(self) -> WebchatForm:
        missing = set(self.required) - set(self.fields)
        if missing:
            raise ValueError(f"required fields must be asked for too: {sorted(missing)}")
        return self


class WebchatChannel(_Account):
    """The chat widget on the company's website: one ``<script>`` tag on any page
    (``/webchat/widget.js``, ``data-account`` = this id)."""

    kind: Literal["webchat"]
    mode: Literal["widget"] = "widget"
    """Visitors come to the gateway's ``/webchat`` endpoints: no webhook, no polling."""
    origins: tuple[str, ...] = ()
    """Sites whose pages may use the chat (``https://shop.example``); the gateway's own
    pages always may."""
    secret: SecretStr | None = None
    """Signs visitor tokens; unset: derived from the staff token (rotating it makes
    every visitor a new one)."""
    identity_secret: SecretStr | None = None
    """Shared with the site: a logged-in user's id signed with it (HMAC-SHA256, hex)
    makes them the same visitor on any device."""
    intro: str = Field("Hello! How can we help?", max_length=500)
    color: str = Field("#2563eb", pattern=r"^#[0-9a-fA-F]{6}$")
    offline_text: str = Field(
        "We are offline now. Leave a message and how to reach you: we answer as soon as "
        "we are back.",
        max_length=500,
    )
    form: WebchatForm = WebchatForm()
    operator_names: bool = True
    """Show the answering operator's name on replies."""
    avatar: AnyHttpUrl | None = None
    """A picture shown next to the operators' replies (the company's logo, say)."""
    max_file_mb: float = Field(10, gt=0, le=20)
    file_types: tuple[str, ...] = (
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
    )
    messages_per_minute: int = Field(20, ge=1)
    """Per visitor (messages, files and receipts together)."""
    ip_per_minute: int = Field(60, ge=1)
    """Per IP address, whichever visitors (a NAT shares one)."""

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return value


AnyChannel = TelegramChannel | VkChannel | ViberChannel | WhatsAppChannel | WebchatChannel
ChannelSettings = Annotated[AnyChannel, Field(discriminator="kind")]
