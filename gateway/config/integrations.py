"""The config of what talks to other systems: the HTTP API's tokens (``api``), the
CRM webhooks (``integrations.webhooks``) and the satisfaction survey (``csat``).

Event types are named here, once: the webhooks' filters are checked against them when
the config loads, and :mod:`gateway.store.processes` writes nothing else.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from gateway.config.sections import _Section

EVENT_TYPES = (
    "process.opened",
    "process.renamed",
    "task.opened",
    "task.updated",
    "task.taken",
    "task.assigned",
    "task.transferred",
    "task.escalated",
    "task.moved",
    "task.closed",
    "task.reopened",
    "task.rated",
    "reminder.sent",
    "contact.merged",
    "contact.unmerged",
    "contact.banned",
    "contact.unbanned",
    "message.inbound",
    "message.outbound",
)
"""Every type the events stream carries (see ``docs/integrations.md``)."""

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")


class ApiToken(_Section):
    """One client of the HTTP API: its bearer token and what it may do."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    """Who acted, in logs and events (``api:<name>``)."""
    token: SecretStr
    scopes: tuple[Scope, ...] = Field(("read",), min_length=1)
    """``read``: look; ``write``: act on tasks, contacts and messages, post events;
    ``admin``: also dead letters, the dashboard and export. Each implies none of the
    others: list every scope the client needs."""

    @field_validator("token")
    @classmethod
    def _long(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 24:
            raise ValueError("at least 24 characters (e.g. `openssl rand -hex 24`)")
        return value


class ApiSettings(_Section):
    tokens: tuple[ApiToken, ...] = ()
    """No tokens: the API answers 401 to everything (it is always mounted)."""

    @model_validator(mode="after")
    def _unique(self) -> ApiSettings:
        names = [t.name for t in self.tokens]
        secrets = [t.token.get_secret_value() for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("token names must be unique")
        if len(set(secrets)) != len(secrets):
            raise ValueError("two clients share a token")
        return self


class WebhookTarget(_Section):
    """One CRM endpoint that receives events as signed HTTP POSTs."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    url: AnyHttpUrl
    secret: SecretStr = Field(min_length=16)
    """Signs every delivery: ``X-Gateway-Signature: sha256=HMAC(secret, timestamp.body)``."""
    events: tuple[str, ...] = Field(("*",), min_length=1)
    """Event types, with ``*`` wildcards: ``task.*``, ``message.inbound``, ``*``."""
    retry_for_hours: float = Field(24.0, gt=0, le=24 * 14)
    """How long a failing delivery is retried (exponential backoff) before it is
    parked among the dead letters (visible and re-playable through the API)."""
    timeout_seconds: float = Field(10.0, gt=0, le=120)

    @field_validator("events")
    @classmethod
    def _known(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            if not fnmatch.filter(EVENT_TYPES, pattern):
                known = ", ".join(EVENT_TYPES)
                raise ValueError(f"{pattern!r} matches no event type; known: {known}")
        return patterns

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.events)


class IntegrationsSettings(_Section):
    webhooks: tuple[WebhookTarget, ...] = ()

    @field_validator("webhooks")
    @classmethod
    def _unique(cls, targets: tuple[WebhookTarget, ...]) -> tuple[WebhookTarget, ...]:
        ids = [t.id for t in targets]
        if len(set(ids)) != len(ids):
            raise ValueError("webhook ids must be unique")
        return targets


class CsatSettings(_Section):
    """Asking customers to rate a closed task (per account: ``channels[].csat``)."""

    enabled: bool = False
    question: str = Field("How did we do? Please rate our answer from 1 to 5.", max_length=1000)
    thanks: str = Field("Thank you for your rating!", max_length=1000)
    wait_hours: float = Field(24.0, gt=0, le=24 * 30)
    """A customer who has not answered by then is recorded as not answering."""
