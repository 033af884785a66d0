"""``bridge_config.yaml`` → validated, typed settings.

One pydantic model per YAML section, validated once at start. Secrets are
``SecretStr`` and may come from the environment with ``${NAME}`` (or
``${NAME:-default}``). Every error is reported with its YAML path
(``channels[2].token``) and what was expected; placeholder values such as
``CHANGE_ME`` are rejected so an unedited example never reaches production.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from gateway.config.abuse import AntispamSettings, SpamRule
from gateway.config.accounts import (
    AnyChannel,
    ChannelSettings,
    Responsible,
    TelegramChannel,
    TemplateSettings,
    ViberChannel,
    VkChannel,
    WebchatChannel,
    WhatsAppChannel,
)
from gateway.config.integrations import (
    EVENT_TYPES,
    ApiSettings,
    ApiToken,
    CsatSettings,
    IntegrationsSettings,
    WebhookTarget,
)
from gateway.config.lines import MAIN, Line, LineSla
from gateway.config.references import problems
from gateway.config.sections import (
    _ENV_REF,
    _PLACEHOLDER,
    GRAPH_API,
    STAFF_ACCOUNT,
    TELEGRAM_API,
    VIBER_API,
    VK_API,
    BusSettings,
    CompanySettings,
    ContactSettings,
    DedupSettings,
    DeliverySettings,
    Department,
    EmbeddedRedis,
    HistorySettings,
    LogSettings,
    Operator,
    ProcessSettings,
    QuickReply,
    RedisSettings,
    ReminderSettings,
    Role,
    ServerSettings,
    SlaSettings,
    StaffSettings,
    TelegramEndpoint,
    WorkingHours,
    _Section,
)
from gateway.errors import ConfigError

__all__ = [
    "EVENT_TYPES",
    "GRAPH_API",
    "MAIN",
    "STAFF_ACCOUNT",
    "TELEGRAM_API",
    "VIBER_API",
    "VK_API",
    "AntispamSettings",
    "AnyChannel",
    "ApiSettings",
    "ApiToken",
    "BusSettings",
    "ChannelSettings",
    "CompanySettings",
    "ContactSettings",
    "CsatSettings",
    "DedupSettings",
    "DeliverySettings",
    "Department",
    "EmbeddedRedis",
    "HistorySettings",
    "IntegrationsSettings",
    "Line",
    "LineSla",
    "LogSettings",
    "Operator",
    "ProcessSettings",
    "QuickReply",
    "RedisSettings",
    "ReminderSettings",
    "Responsible",
    "Role",
    "ServerSettings",
    "Settings",
    "SlaSettings",
    "SpamRule",
    "StaffSettings",
    "TelegramChannel",
    "TelegramEndpoint",
    "TemplateSettings",
    "ViberChannel",
    "VkChannel",
    "WebchatChannel",
    "WebhookTarget",
    "WhatsAppChannel",
    "WorkingHours",
    "load_config",
    "parse_config",
    "yaml_path",
]


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
    api: ApiSettings = ApiSettings()
    integrations: IntegrationsSettings = IntegrationsSettings()
    antispam: AntispamSettings = AntispamSettings()
    templates: tuple[QuickReply, ...] = ()
    """Quick replies operators send with ``//name`` (see ``gateway.staff.quick``)."""
    staff: StaffSettings
    channels: tuple[ChannelSettings, ...] = Field(min_length=1)
    lines: tuple[Line, ...] = ()
    """Several staff groups (see :mod:`gateway.config.lines`). Empty: ``staff.chat_id``
    is the only one."""

    @model_validator(mode="before")
    @classmethod
    def _default_group(cls, data: Any) -> Any:
        """With ``lines``, ``staff.chat_id`` may be left out: it is the first line's."""
        if isinstance(data, dict) and isinstance(data.get("staff"), dict):
            lines = data.get("lines")
            first = lines[0] if isinstance(lines, list) and lines else None
            if isinstance(first, dict) and "chat_id" not in data["staff"]:
                data = {**data, "staff": {**data["staff"], "chat_id": first.get("chat_id")}}
        return data

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def channel(self, account: str) -> AnyChannel | None:
        return self._channels.get(account)

    @functools.cached_property
    def _channels(self) -> dict[str, AnyChannel]:
        """The channels by account id (looked up several times per message)."""
        found: dict[str, AnyChannel] = {}
        for channel in self.channels:
            found.setdefault(channel.id, channel)
        return found

    @functools.cached_property
    def all_lines(self) -> tuple[Line, ...]:
        """The configured lines, or the one line the ``staff`` group is."""
        return self.lines or (Line(name=MAIN, chat_id=self.staff.chat_id),)

    @property
    def default_line(self) -> Line:
        """The first line: it serves the accounts no line names, and API-made contacts."""
        return self.all_lines[0]

    def line(self, name: str | None) -> Line:
        """The line named ``name`` (the default line for ``None`` or a name no longer
        configured: a task from before a config change)."""
        return next((x for x in self.all_lines if x.name == name), self.default_line)

    def line_at(self, chat: int | str) -> Line | None:
        """The line whose staff group ``chat`` is (``None``: not a staff group)."""
        return next((x for x in self.all_lines if str(x.chat_id) == str(chat)), None)

    def line_of(self, account: str) -> Line:
        """The line serving an account's customers."""
        return next((x for x in self.all_lines if account in x.accounts), self.default_line)

    def secrets(self) -> list[str]:
        """Every secret value, so logging can redact them wherever they appear."""
        found: list[str] = []
        for endpoint in (self.staff, *self.channels):
            for name in ("token", "webhook_secret", "secret", "app_secret", "verify_token"):
                value = getattr(endpoint, name, None)
                if isinstance(value, SecretStr):
                    found.append(value.get_secret_value())
        found.extend(t.token.get_secret_value() for t in self.api.tokens)
        found.extend(w.secret.get_secret_value() for w in self.integrations.webhooks)
        found.extend(t.get_secret_value() for t in self.staff.relay_bots)
        if self.server.media_secret is not None:
            found.append(self.server.media_secret.get_secret_value())
        return found


_CHANNEL_KINDS = ("telegram", "vk", "viber", "whatsapp", "webchat")


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
        errors.extend(problems(settings))
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
