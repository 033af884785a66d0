"""The config's sections other than the channel accounts (see :mod:`.accounts`)."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from gateway.hours import DAYS, Schedule, parse_interval
from gateway.staff.quick import MACROS, unknown_macros

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER = re.compile(r"^\s*(change[_ -]?me|todo|fixme|xxx+|<[^>]*>|your[_-][\w-]*)\s*$", re.I)
# Bot API: "secret_token ... 1-256 characters. Only characters A-Z, a-z, 0-9, _ and -"
# (https://core.telegram.org/bots/api#setwebhook).
_TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TELEGRAM_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
TELEGRAM_API = "https://api.telegram.org"
VK_API = "https://api.vk.ru"
VIBER_API = "https://chatapi.viber.com/pa"
GRAPH_API = "https://graph.facebook.com"
STAFF_ACCOUNT = "staff"


def supergroup(chat_id: int) -> int:
    """A staff group's id: a supergroup's is negative."""
    if chat_id >= 0:
        raise ValueError("a supergroup id is negative, e.g. -1001234567890")
    return chat_id


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddedRedis(_Section):
    appendfsync: Literal["always", "everysec"] = "everysec"
    """``everysec``: a crash of the Redis process loses nothing acknowledged (the AOF is
    written before replies); only an OS crash can lose up to one second.
    ``always``: fsync before every reply, for machines that lose power."""


class RedisSettings(_Section):
    url: str | None = None
    """``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``; absent = embedded."""
    embedded: EmbeddedRedis = EmbeddedRedis()

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "unix://", "redis+sentinel://")
        if value is not None and not value.startswith(schemes):
            raise ValueError(f"must start with one of {', '.join(schemes)}")
        return value


class ServerSettings(_Section):
    listen: str = "127.0.0.1:8080"
    public_url: AnyHttpUrl | None = None
    """The HTTPS address platforms reach this server at; webhooks are registered on it."""
    media_secret: SecretStr | None = None
    """Signs the URLs of files the gateway serves to messengers that fetch media by
    URL (Viber). Unset: derived from the staff bot's token."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class BusSettings(_Section):
    partitions: int = Field(16, ge=1, le=1024)
    """Inbound/outbound streams are split by contact; one consumer owns a partition at a
    time, which is what keeps each contact's messages in order."""
    lease_seconds: float = Field(15.0, ge=1.0, le=600.0)
    """How long a dead worker's partitions stay locked before another takes them over."""
    delivery_parallel: int = Field(16, ge=1, le=64)
    """Chats (staff topics, customer chats) of one partition that delivery sends to at
    once; each chat's messages still go one after another. More keeps a chat waiting for
    its rate limit from holding up the others; a worker killed mid-send may repeat up to
    this many sends per partition it held (Telegram has no idempotency key)."""
    dedup_ttl_days: int = Field(8, ge=8, le=365)
    """Platform event keys are remembered this long (≥ 8 days: Telegram's update ids)."""


class DeliverySettings(_Section):
    flood_limits: bool = True
    """Keep to Telegram's limits proactively. Off only for benchmarks against emulators."""
    group_per_minute: int = Field(20, ge=3)
    private_per_second: float = Field(1.0, gt=0)
    bot_per_second: float = Field(30.0, gt=0)
    vk_per_second: float = Field(20.0, gt=0)
    """VK API calls per second per community token (VK allows 20)."""
    coalesce: bool = True
    """When a staff topic's messages must wait for Telegram's group budget, send the
    texts queued behind one as one message (each line with its time)."""
    reactions_as_text: bool = True
    """An operator's reaction to a customer's message reaches the customer as the same
    reaction where the messenger lets a bot react (Telegram, WhatsApp); elsewhere (VK,
    Viber) as a short reply with the emoji — or, with ``false``, not at all."""
    max_backoff_seconds: float = Field(60.0, ge=1)
    request_timeout_seconds: float = Field(30.0, ge=1)


class SlaSettings(_Section):
    first_response_minutes: float = Field(15, gt=0)
    """A new task must be answered within this time of the customer's message."""
    next_response_minutes: float = Field(30, gt=0)
    """After an operator answered, the customer's next message restarts the clock with this."""
    take_within_minutes: float | None = Field(None, gt=0)
    """A new (or transferred) task nobody takes within this time escalates: a notice
    in its topic mentions ``escalate_to``. Unset: never. Counts working time when the
    account has working hours."""
    escalate_to: Literal["role", "head", "both"] = "both"
    """``role``: the members of the task's role (those online; all if nobody is);
    ``head``: the head of the account's (or the owner's) department; ``both``."""


class ProcessSettings(_Section):
    number_format: str = "BP-{date:%Y%m%d}-{n:04d}"
    """Business-process numbers: ``{date}`` the local day, ``{n}`` the counter of that day."""
    auto_close_after_minutes: float = Field(60, ge=0)
    """Close a task answered by an operator after this much customer silence; 0 = never."""

    @field_validator("number_format")
    @classmethod
    def _formats(cls, value: str) -> str:
        import datetime as dt

        try:
            value.format(date=dt.date(2026, 1, 31), n=7)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"not a valid format with {{date}} and {{n}}: {exc}") from None
        return value


class ReminderSettings(_Section):
    interval_minutes: float = Field(15, ge=0)
    """Remind about a task past its deadline every this many minutes; 0 = never."""


class ContactSettings(_Section):
    default_region: str = Field("RU", pattern=r"^[A-Z]{2}$")
    """How to read a phone written without a country code (ISO 3166: RU, DE, US…)."""


class HistorySettings(_Section):
    retention_days: int = Field(365, ge=1)
    """Messages older than this leave the contact's history (processes and events stay)."""


class DedupSettings(_Section):
    auto_merge: Literal["exact", "suggest", "off"] = "exact"
    """A phone or e-mail another contact already has: ``exact`` merges them into one
    person, ``suggest`` asks staff in both topics, ``off`` leaves them apart."""
    suggest_by_name: bool = False
    """Suggest (never merge) when a new contact's name is close to an existing one's."""
    name_threshold: int = Field(90, ge=50, le=100)
    """How close (rapidfuzz token-sort ratio, 0-100) a name must be to be suggested."""


class CompanySettings(_Section):
    name: str = ""
    """``{company.name}`` in quick replies."""


class WorkingHours(_Section):
    """When an account is staffed. Response deadlines count only this time."""

    timezone: str | None = None
    """An IANA zone; unset: the gateway's ``timezone``."""
    week: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], tuple[str, ...]] = Field(
        default_factory=dict
    )
    """Opening intervals per day, e.g. ``mon: ["09:00-13:00", "14:00-18:00"]``."""
    holidays: tuple[date, ...] = ()

    @field_validator("week")
    @classmethod
    def _intervals(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for intervals in value.values():
            for interval in intervals:
                parse_interval(interval)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    def schedule(self, default_zone: ZoneInfo) -> Schedule:
        zone = ZoneInfo(self.timezone) if self.timezone else default_zone
        days: dict[str, tuple[str, ...]] = {str(k): v for k, v in self.week.items()}
        week = tuple(tuple(sorted(parse_interval(i) for i in days.get(day, ()))) for day in DAYS)
        return Schedule(zone=zone, week=week, holidays=frozenset(self.holidays))


class QuickReply(_Section):
    """A prepared answer: ``//name`` in a topic sends ``text`` with its macros filled."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    text: str = Field(min_length=1, max_length=4096)
    accounts: tuple[str, ...] = ()
    """Offered only for customers of these accounts (empty: all)."""
    roles: tuple[str, ...] = ()
    """Offered only to operators with one of these roles (empty: everyone)."""

    @field_validator("text")
    @classmethod
    def _known_macros(cls, value: str) -> str:
        unknown = unknown_macros(value)
        if unknown:
            known = ", ".join("{" + m + "}" for m in sorted(MACROS))
            raise ValueError(f"unknown macro {{{unknown[0]}}}; known: {known}")
        return value


class Operator(_Section):
    id: int
    name: str = Field(min_length=1)
    max_chats: int = Field(5, ge=1, le=1000)
    """How many open tasks the operator handles at once; no new ones beyond it."""
    roles: tuple[str, ...] = ()
    """CRM positions (``sales``, ``service``…) accounts route new tasks to."""
    accounts: tuple[str, ...] = ()
    """Accounts whose customers this operator may write to (empty: all). Elsewhere
    they see the topics, but their replies are refused with an explanation."""
    admin: bool = False
    """May do everything, whatever ``accounts`` says."""
    department: str | None = None
    """Their department (``staff.departments``)."""
    working_hours: WorkingHours | None = None
    """Their shifts: outside them they get no new tasks, even if online. Unset: any time."""


_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class Role(_Section):
    """A CRM position (``sales``, ``service``…): accounts route new tasks to a role."""

    name: str = Field(pattern=_NAME)
    title: str | None = None


class Department(_Section):
    """A group of operators with a head, who hears of tasks nobody takes in time."""

    name: str = Field(pattern=_NAME)
    title: str | None = None
    head: int | None = None
    """The head's Telegram user id (one of ``staff.operators``)."""


class TelegramEndpoint(_Section):
    token: SecretStr
    api_server: AnyHttpUrl = AnyHttpUrl(TELEGRAM_API)
    """Bot API base URL: the real one, a local Bot API server, or an emulator."""
    mode: Literal["webhook", "polling"] = "polling"
    webhook_secret: SecretStr | None = None

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not _TELEGRAM_TOKEN.match(value.get_secret_value()):
            raise ValueError("a bot token looks like 123456:ABC-DEF (from @BotFather)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TELEGRAM_SECRET.match(value.get_secret_value()):
            raise ValueError("1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramEndpoint:
        if self.mode == "webhook" and self.webhook_secret is None:
            raise ValueError("webhook mode needs webhook_secret (Telegram sends it back)")
        return self


class StaffSettings(TelegramEndpoint):
    chat_id: int
    """The staff forum supergroup (an id like -1001234567890)."""
    operators: tuple[Operator, ...] = ()
    """Who may answer and command. Empty: any member of the staff group."""
    roles: tuple[Role, ...] = ()
    """The roles operators have and accounts route to. Empty: whatever
    ``operators[].roles`` name (declare them to have typos caught)."""
    departments: tuple[Department, ...] = ()
    idle_offline_minutes: float | None = Field(None, gt=0)
    """An online operator who does nothing in the staff group (no message, command or
    button) for this long is set offline and told so privately. Unset: never."""
    notify_privately: bool = False
    """Also tell an operator of each task assigned to them in a private chat with the
    staff bot, with a link to the topic (they must have started the bot)."""
    relay_bots: tuple[SecretStr, ...] = ()
    """Tokens of extra bots, members of the staff group (admins with "Manage topics"
    if they should be able to reopen topics), that share the sending: Telegram lets a
    bot post about 20 messages a minute into one group, so a pool of N bots carries N
    times that. Customers' messages without buttons go through the pool; cards, buttons
    and everything operators press stay with the staff bot, which alone receives the
    group's updates."""

    @field_validator("relay_bots")
    @classmethod
    def _relay_shapes(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for token in value:
            if not _TELEGRAM_TOKEN.match(token.get_secret_value()):
                raise ValueError("a bot token looks like 123456:ABC-DEF (from @BotFather)")
        return value

    topic_name: str = "{name} · {channel}"
    topic_status: bool = True
    """Start each topic's title with its task's state — 🟢 new, 🟡 in work, 🔁 returned,
    🔴 overdue, ✅ closed — renamed only when the state changes (a rename counts toward
    the group's message limit like a message)."""

    @field_validator("chat_id")
    @classmethod
    def _supergroup(cls, value: int) -> int:
        return supergroup(value)
