"""``bridge_config.yaml`` → validated, typed settings.

One pydantic model per YAML section, validated once at start. Secrets are
``SecretStr`` and may come from the environment with ``${NAME}`` (or
``${NAME:-default}``). Every error is reported with its YAML path
(``channels[2].token``) and what was expected; placeholder values such as
``CHANGE_ME`` are rejected so an unedited example never reaches production.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError
from gateway.hours import DAYS, Schedule, parse_interval
from gateway.staff.quick import MACROS, unknown_macros

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER = re.compile(r"^\s*(change[_ -]?me|todo|fixme|xxx+|<[^>]*>|your[_ -].*)\s*$", re.I)
# Bot API: "secret_token ... 1-256 characters. Only characters A-Z, a-z, 0-9, _ and -"
# (https://core.telegram.org/bots/api#setwebhook).
_TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TELEGRAM_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
TELEGRAM_API = "https://api.telegram.org"
VK_API = "https://api.vk.ru"
VIBER_API = "https://chatapi.viber.com/pa"
GRAPH_API = "https://graph.facebook.com"
STAFF_ACCOUNT = "staff"


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
    api_tokens: tuple[SecretStr, ...] = ()
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
    max_backoff_seconds: float = Field(60.0, ge=1)
    request_timeout_seconds: float = Field(30.0, ge=1)


class SlaSettings(_Section):
    first_response_minutes: float = Field(15, gt=0)
    """A new task must be answered within this time of the customer's message."""
    next_response_minutes: float = Field(30, gt=0)
    """After an operator answered, the customer's next message restarts the clock with this."""


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


class QuickReply(_Section):
    """A prepared answer: ``//name`` in a topic sends ``text`` with its macros filled."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    text: str = Field(min_length=1, max_length=4096)
    accounts: tuple[str, ...] = ()
    """Offered only for customers of these accounts (empty: all)."""

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
    topic_name: str = "{name} · {channel}"

    @field_validator("chat_id")
    @classmethod
    def _supergroup(cls, value: int) -> int:
        if value >= 0:
            raise ValueError("a supergroup id is negative, e.g. -1001234567890")
        return value


class WorkingHours(_Section):
    """When an account is staffed. Response deadlines count only this time."""

    timezone: str | None = None
    """An IANA zone; unset: the gateway's ``timezone``."""
    week: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], tuple[str, ...]] = {}
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


class _Account(_Section):
    """What every customer-facing account has, whatever its messenger."""

    working_hours: WorkingHours | None = None
    """Unset: always staffed (deadlines in plain time)."""
    away_message: str | None = Field(None, min_length=1, max_length=4096)
    """Sent to a customer who writes outside working hours, once per process."""
    greeting: str | None = Field(None, min_length=1, max_length=4096)
    """Sent to a customer with their first message ever (a new contact)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    title: str | None = None
    close_reasons: tuple[str, ...] = ()
    """Reasons operators choose from when closing a task of this account (empty: free text)."""
    require_close_reason: bool = False
    create_clients: bool = True
    """New senders become ``client`` contacts; ``false``: ``lead`` (not a customer yet)."""


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


AnyChannel = TelegramChannel | VkChannel | ViberChannel | WhatsAppChannel
ChannelSettings = Annotated[AnyChannel, Field(discriminator="kind")]


class Settings(_Section):
    timezone: str = "UTC"
    data_dir: Path = Path("./data")
    redis: RedisSettings = RedisSettings()
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    bus: BusSettings = BusSettings()
    delivery: DeliverySettings = DeliverySettings()
    processes: ProcessSettings = ProcessSettings()
    sla: SlaSettings = SlaSettings()
    reminders: ReminderSettings = ReminderSettings()
    contacts: ContactSettings = ContactSettings()
    dedup: DedupSettings = DedupSettings()
    history: HistorySettings = HistorySettings()
    company: CompanySettings = CompanySettings()
    templates: tuple[QuickReply, ...] = ()
    """Quick replies operators send with ``//name`` (see ``gateway.staff.quick``)."""
    staff: StaffSettings
    channels: tuple[ChannelSettings, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _unique_accounts(self) -> Settings:
        seen: set[str] = set()
        for channel in self.channels:
            if channel.id == STAFF_ACCOUNT:
                raise ValueError(f"channel id {STAFF_ACCOUNT!r} is reserved for the staff bot")
            if channel.id in seen:
                raise ValueError(f"channel id {channel.id!r} is used twice")
            seen.add(channel.id)
        names: set[str] = set()
        for template in self.templates:
            if template.name in names:
                raise ValueError(f"quick reply {template.name!r} is defined twice")
            names.add(template.name)
            for account in template.accounts:
                if account not in seen:
                    raise ValueError(f"quick reply {template.name!r}: no channel {account!r}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def channel(self, account: str) -> AnyChannel | None:
        return next((c for c in self.channels if c.id == account), None)

    def secrets(self) -> list[str]:
        """Every secret value, so logging can redact them wherever they appear."""
        found: list[str] = []
        for endpoint in (self.staff, *self.channels):
            for name in ("token", "webhook_secret", "secret", "app_secret", "verify_token"):
                value = getattr(endpoint, name, None)
                if isinstance(value, SecretStr):
                    found.append(value.get_secret_value())
        found.extend(t.get_secret_value() for t in self.server.api_tokens)
        if self.server.media_secret is not None:
            found.append(self.server.media_secret.get_secret_value())
        return found


_CHANNEL_KINDS = ("telegram", "vk", "viber", "whatsapp")


def yaml_path(loc: tuple[int | str, ...]) -> str:
    """``('channels', 2, 'telegram', 'token')`` → ``channels[2].token``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _CHANNEL_KINDS and out.endswith("]"):
            continue  # the discriminated-union tag pydantic inserts; not a YAML key
        elif part == "[key]":
            continue  # the key itself was wrong (already named): not a YAML key
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _interpolate(
    node: Any, path: str, environ: Mapping[str, str], errors: list[tuple[str, str]], lenient: bool
) -> Any:
    if isinstance(node, dict):
        return {
            k: _interpolate(v, f"{path}.{k}" if path else str(k), environ, errors, lenient)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            _interpolate(v, f"{path}[{i}]", environ, errors, lenient) for i, v in enumerate(node)
        ]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        if not lenient:
            errors.append((path, f"environment variable {name} is not set"))
        return match.group(0)

    value = _ENV_REF.sub(substitute, node)
    if _PLACEHOLDER.match(value):
        errors.append((path, f"{value!r} is a placeholder: put the real value here"))
    return value


def parse_config(
    text: str,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    lenient_env: bool = False,
) -> Settings:
    """Validate YAML text; raise :class:`ConfigError` listing every problem with its path.

    ``overrides`` (dotted keys → values) are applied after interpolation; the sandbox
    uses them to point every account at the emulators.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError([(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([("(root)", "expected a mapping of sections")])
    errors: list[tuple[str, str]] = []
    data = _interpolate(raw, "", os.environ if environ is None else environ, errors, lenient_env)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        errors.extend(_validation_errors(exc, skip={path for path, _ in errors}))
    if errors or settings is None:
        raise ConfigError(sorted(set(errors)))
    return settings


def _validation_errors(exc: ValidationError, skip: set[str]) -> list[tuple[str, str]]:
    """pydantic's errors as (YAML path, message), one useful message per problem.

    A path already reported as a placeholder is skipped ("placeholder" says more than
    "bad token format"), and so is an "at least 1 item" error on a list whose items
    themselves failed (pydantic reports the emptied list too).
    """
    found = [(yaml_path(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
    return [
        (path, message)
        for path, message in found
        if path not in skip
        and not (
            message.startswith("Tuple should have at least")
            and any(other.startswith(f"{path}[") for other, _ in found)
        )
    ]


def load_config(path: str | Path, **kwargs: Any) -> Settings:
    """Read and validate a config file (see :func:`parse_config`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from exc
    return parse_config(text, **kwargs)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node: Any = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        key: int | str = int(part) if part.isdigit() else part
        node = node[int(key)] if isinstance(node, list) else node.setdefault(str(key), {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
