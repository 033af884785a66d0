"""The export format: JSON Lines, one object per line, each with a ``type``.

Schema 1, in file order::

    header     schema version, when, ``--since``, key prefix, staff group
    contact    one per contact: its hash, identities, phones, e-mails, merges, which
               lookups (identity, phone, e-mail → contact) point at it, its topic and
               card, its timers, its reserved process numbers
    process    the contact's current process (``current``) or an archived one, in
               archive order (newest first); each holds its tasks
    message    one history entry: its stream id and fields, oldest first
    (a merged person is one group: the survivor, then every contact merged into it,
    then their processes, then their messages)
    link       one message-map entry (customer message ↔ staff copy)
    operator   presence, last activity, idle timer
    raw        a key of another feature kept verbatim (daily statistics, surveys
               waiting for an answer)
    state      counters (next contact id, per-day process numbers, round robin),
               poll cursors, merge suggestions already made
    end        how many lines precede it (a cut-off file is refused)

Expiring values carry ``expires_at`` (epoch ms) and are restored with the time they
had left. Everything is text as Redis holds it, so a round trip is exact.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from gateway.export.families import RAW
from gateway.process import Process

SCHEMA_VERSION = 1
FORMAT = "gateway-export"
HISTORY_FIELDS = frozenset(
    {"dir", "at", "channel", "account", "kind", "text", "operator", "process", "task", "msg"}
)
"""What the timeline reads from every history entry (``gateway.store.history``)."""
TIMER_KINDS = frozenset({"auto_close", "remind", "take"})
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_ID = re.compile(r"^[^:\s]{1,64}$")

Score = int | float
"""A sorted-set score: integral ones (times in ms, operator ids) are written as ints."""


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expiring(_Line):
    value: str
    expires_at: int | None = None
    """Epoch ms; ``None``: kept for good."""


class Header(_Line):
    type: Literal["header"]
    format: Literal["gateway-export"]
    schema_: int = Field(alias="schema")
    exported_at: datetime
    since: date | None = None
    prefix: str
    staff_chat: int


class Lookups(_Line):
    """The index entries that resolve to this contact (a contact merged away keeps
    its identities in its own set, but the lookups point at the survivor)."""

    identities: list[str] = []
    phones: list[str] = []
    emails: list[str] = []


class Topic(_Line):
    thread: int
    card: str | None = None
    card_shown: Expiring | None = None
    reminder: str | None = None


class ContactLine(_Line):
    type: Literal["contact"]
    id: str
    fields: dict[str, str] = Field(min_length=1)
    identities: list[str] = []
    phones: list[str] = []
    emails: list[str] = []
    absorbed: list[str] = []
    distinct: list[str] = []
    lookups: Lookups = Lookups()
    topic: Topic | None = None
    timers: dict[str, Score] = {}
    awaiting: Score | None = None
    owned: Score | None = None
    numbers: dict[str, Expiring] = {}
    """Process numbers reserved for the contact, by day (``YYYYMMDD``)."""
    line: str | None = None
    """The line the conversation is in (with several lines)."""
    line_start: Expiring | None = None
    """The line an operator started a conversation in (``/new``), until they answer."""
    topics: dict[str, Topic] = {}
    """Topics in the other lines' groups, by the group's chat id (``topic``: the
    header's group)."""
    watchers: list[str] = []
    """Operators watching the contact (``/watch``)."""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("a contact id is 1-64 characters, no spaces or ':'")
        return value

    @field_validator("identities")
    @classmethod
    def _identities(cls, value: list[str]) -> list[str]:
        for identity in value:
            account, colon, user = identity.partition(":")
            if not (account and colon and user):
                raise ValueError(f"{identity!r} is not account:user_id")
        return value

    @field_validator("timers")
    @classmethod
    def _timers(cls, value: dict[str, Score]) -> dict[str, Score]:
        unknown = set(value) - TIMER_KINDS
        if unknown:
            raise ValueError(f"unknown timer kinds {sorted(unknown)}")
        return value


class ProcessLine(_Line):
    type: Literal["process"]
    contact: str
    current: bool
    process: Process


class MessageLine(_Line):
    type: Literal["message"]
    contact: str
    id: str
    fields: dict[str, str]

    @field_validator("id")
    @classmethod
    def _stream_id(cls, value: str) -> str:
        if not _STREAM_ID.match(value) or value == "0-0":
            raise ValueError(f"{value!r} is not a stream entry id (<ms>-<seq>)")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        missing = HISTORY_FIELDS - set(value)
        if missing:
            raise ValueError(f"missing history fields {sorted(missing)}")
        datetime.fromisoformat(value["at"])
        return value


class LinkLine(_Line):
    type: Literal["link"]
    key: str = Field(min_length=3)
    """``account:chat:message`` (after ``<prefix>:msg:``)."""
    fields: dict[str, str]
    expires_at: int | None = None


class OperatorLine(_Line):
    type: Literal["operator"]
    id: str = Field(min_length=1)
    presence: str | None = None
    active: str | None = None
    idle_timer: Score | None = None


class RawLine(_Line):
    type: Literal["raw"]
    key: str
    """After ``<prefix>:``; only the families of ``gateway.export.families.RAW``."""
    kind: Literal["string", "hash", "set"]
    value: str | dict[str, str] | list[str]
    expires_at: int | None = None

    @model_validator(mode="after")
    def _family(self) -> RawLine:
        family = next((f for f in RAW if self.key.startswith(f)), None)
        if family is None:
            raise ValueError(f"{self.key!r} is not of a family carried verbatim")
        if self.kind != RAW[family]:
            raise ValueError(f"{family}… keys are a {RAW[family]}, not a {self.kind}")
        shapes = {"string": "a string", "hash": "an object", "set": "a list"}
        found = {str: "string", dict: "hash", list: "set"}.get(type(self.value))
        if found != self.kind:
            raise ValueError(f"the value of a {self.kind} must be {shapes[self.kind]}")
        return self


class StateLine(_Line):
    type: Literal["state"]
    contact_seq: int = Field(ge=0)
    process_seq: dict[str, Expiring] = {}
    round_robin: dict[str, str] = {}
    cursors: dict[str, str] = {}
    suggested: dict[str, Expiring] = {}
    """``a:b`` (the pair of contacts) → the marker."""
    timers: dict[str, Score] = {}
    """Timers of other kinds than a contact's or an operator's, verbatim."""


class EndLine(_Line):
    type: Literal["end"]
    lines: int = Field(ge=1)


Record = ContactLine | ProcessLine | MessageLine | LinkLine | OperatorLine | RawLine | StateLine
Line = Annotated[Header | Record | EndLine, Field(discriminator="type")]
LINE: TypeAdapter[Header | Record | EndLine] = TypeAdapter(Line)
TYPES = ("header", "contact", "process", "message", "link", "operator", "raw", "state", "end")
