"""What a CRM receives: the delivery (one event for one target), its JSON body and
its signature.

The body is built from the stored delivery every time it is sent, byte for byte the
same, so a retry and a replay carry the same body and the same ``X-Gateway-Delivery``
id; only the timestamp (and with it the signature) is new on each attempt, so that a
receiver can refuse old requests replayed by someone else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict

from gateway.errors import GatewayError
from gateway.store.redis import text

log = structlog.get_logger(__name__)
USER_AGENT = "messenger-gateway-webhooks/1"


class BadEvent(GatewayError):
    """An entry of the events stream that is not an event (no type): nothing to send."""


class Delivery(BaseModel):
    """One event on its way to one target: a queue entry, stored as JSON."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # one written by a newer version
    id: str
    """``<target>:<event id>``: the ``X-Gateway-Delivery`` header, the same on every
    attempt and on a replay (receivers deduplicate by it)."""
    target: str
    event: str
    """The event's id in the events stream (``1718000000000-0``): the body's ``id``."""
    type: str
    at: str
    contact: str
    process: str | None
    task: int | str | None
    actor: str | None
    data: dict[str, Any]

    @property
    def recorded_ms(self) -> int:
        """When Redis stored the event (the stream id's time part), for the lag."""
        return int(self.event.split("-", 1)[0])

    def body(self) -> bytes:
        """The documented JSON body (``docs/integrations.md``), compact UTF-8."""
        document = {
            "id": self.event,
            "type": self.type,
            "at": self.at,
            "contact": self.contact,
            "process": self.process,
            "task": self.task,
            "actor": self.actor,
            "data": self.data,
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class Event(BaseModel):
    """An entry of the events stream, parsed once for every target that wants it."""

    model_config = ConfigDict(frozen=True)
    id: str
    type: str
    at: str
    contact: str
    process: str | None
    task: int | str | None
    actor: str | None
    data: dict[str, Any]

    @classmethod
    def parse(cls, event_id: str, fields: Mapping[bytes, bytes]) -> Event:
        """Read the stream's fields (``gateway.store.events.record_event``): empty
        strings become ``null`` and ``task`` a number (``0``, no task, is ``null``)."""
        got = {text(k): text(v) for k, v in fields.items()}
        kind = got.get("type", "")
        if not kind:
            raise BadEvent(f"event {event_id} has no type: {sorted(got)}")
        return cls(
            id=event_id,
            type=kind,
            at=got.get("at", ""),
            contact=got.get("contact", ""),
            process=got.get("process") or None,
            task=_task(got.get("task", "")),
            actor=got.get("actor") or None,
            data=_data(event_id, got.get("data", "")),
        )

    def to(self, target: str) -> Delivery:
        return Delivery(
            id=f"{target}:{self.id}",
            target=target,
            event=self.id,
            **self.model_dump(exclude={"id"}),
        )


def _task(raw: str) -> int | str | None:
    if raw in ("", "0"):
        return None
    try:
        return int(raw)
    except ValueError:
        return raw  # not a number the gateway writes today: passed on as it is


def _data(event_id: str, raw: str) -> dict[str, Any]:
    """The event's details; a value that is not a JSON object is passed on as
    ``{"raw": …}`` rather than dropped (the event itself still matters)."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    log.warning("webhooks.event_data_not_an_object", event_id=event_id, length=len(raw))
    return {"raw": raw}


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` with the target's secret."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def headers(delivery: Delivery, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Gateway-Event": delivery.type,
        "X-Gateway-Delivery": delivery.id,
        "X-Gateway-Timestamp": str(timestamp),
        "X-Gateway-Signature": signature(secret, timestamp, body),
    }
