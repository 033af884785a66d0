"""Restoring an export into an empty Redis, all or nothing.

Two passes over the file. The first reads every line and checks it — JSON, a known
``type``, the schema version, each record's shape, and what no single line shows
(a process of a contact the file never introduced, two contacts claiming one phone, an
``end`` line that does not count the lines before it) — and writes nothing; the first
problem is refused with its line number. Only a file that passed is written, in
pipelined batches, with every index the gateway reads rebuilt on the way (the reverse
topic map, the /find word index, the name index). If writing fails halfway (Redis
gone, out of memory) every key the file would have written is deleted again, so the
target is as empty as it was; should even that fail, a marker key makes the next
import refuse until the target is emptied.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.export.families import Fate, fate
from gateway.export.lua import MAX_ARGS, Batches, Command
from gateway.export.records import (
    LINE,
    SCHEMA_VERSION,
    TYPES,
    ContactLine,
    EndLine,
    Header,
    MessageLine,
    ProcessLine,
    StateLine,
)
from gateway.export.writes import IMPORT_MARKER, commands_for
from gateway.store import keys
from gateway.store.redis import Redis, text

BATCH = 2000
"""Commands per round trip (one script: see ``gateway.export.lua``)."""


class ImportRefused(GatewayError):
    """The file or the target is not fit for a restore; the message says where and why."""


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines with their numbers (1-based), without line ends."""
    with path.open(encoding="utf-8") as lines:
        for number, raw in enumerate(lines, 1):
            yield number, raw.rstrip("\n")


def _problems(exc: ValidationError) -> str:
    shown = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"][1:])
        shown.append(f"{where}: {error['msg']}" if where else error["msg"])
    more = len(exc.errors()) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def parse(number: int, raw: str) -> Any:
    """One line as its record, or :class:`ImportRefused` saying what is wrong with it."""
    if number > 1:
        with contextlib.suppress(ValidationError):
            return LINE.validate_json(raw)  # the usual case, in one pass; else say why not
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImportRefused(f"line {number}: not JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ImportRefused(f"line {number}: not a JSON object")
    kind = data.get("type")
    if number == 1:
        if kind != "header":
            raise ImportRefused("line 1: not a gateway export (its first line is no header)")
        if data.get("schema") != SCHEMA_VERSION:
            raise ImportRefused(
                f"line 1: schema version {data.get('schema')!r} is not supported "
                f"(this gateway reads version {SCHEMA_VERSION})"
            )
    if kind not in TYPES:
        raise ImportRefused(
            f"line {number}: unknown type {kind!r} (expected one of {', '.join(TYPES)})"
        )
    try:
        return LINE.validate_python(data)
    except ValidationError as exc:
        raise ImportRefused(f"line {number} ({kind}): {_problems(exc)}") from None


@dataclass
class Plan:
    """What the first pass learnt: enough to write without keeping the file in memory."""

    header: Header | None = None
    lines: Counter[str] = field(default_factory=Counter)
    contacts: set[str] = field(default_factory=set)
    max_id: int = 0
    ended: bool = False
    _current: set[str] = field(default_factory=set)
    _last_message: dict[str, tuple[int, int]] = field(default_factory=dict)
    _claimed: dict[str, dict[str, str]] = field(default_factory=dict)

    def check(self, number: int, line: Any) -> None:
        if self.ended:
            raise ImportRefused(f"line {number}: nothing may follow the end line")
        if isinstance(line, Header):
            if number != 1:
                raise ImportRefused(f"line {number}: a second header")
            if line.prefix != keys.PREFIX:
                raise ImportRefused(
                    f"line 1: exported with key prefix {line.prefix!r}, this gateway uses "
                    f"{keys.PREFIX!r}"
                )
            self.header = line
        elif isinstance(line, ContactLine):
            self._contact(number, line)
        elif isinstance(line, ProcessLine | MessageLine):
            if line.contact not in self.contacts:
                raise ImportRefused(
                    f"line {number}: a {line.type} of contact {line.contact}, which no "
                    "contact line before it introduces"
                )
            if isinstance(line, ProcessLine):
                self._process(number, line)
            else:
                self._message(number, line)
        elif isinstance(line, StateLine) and self.lines["state"]:
            raise ImportRefused(f"line {number}: a second state line")
        elif isinstance(line, EndLine):
            if line.lines != number - 1:
                raise ImportRefused(
                    f"line {number}: the end line counts {line.lines} lines, "
                    f"the file has {number - 1} before it"
                )
            self.ended = True
        self.lines[line.type] += 1

    def _contact(self, number: int, line: ContactLine) -> None:
        if line.id in self.contacts:
            raise ImportRefused(f"line {number}: contact {line.id} a second time")
        self.contacts.add(line.id)
        if line.id.isdigit():
            self.max_id = max(self.max_id, int(line.id))
        own = {"identities": line.identities, "phones": line.phones, "emails": line.emails}
        for kind, values in line.lookups.model_dump().items():
            claimed = self._claimed.setdefault(kind, {})
            for value in values:
                if value not in own[kind]:
                    raise ImportRefused(
                        f"line {number}: contact {line.id} claims the lookup of {value}, "
                        f"which is not among its {kind}"
                    )
                if value in claimed:
                    raise ImportRefused(
                        f"line {number}: {value} resolves to contact {claimed[value]} "
                        f"already, not also to {line.id}"
                    )
                claimed[value] = line.id

    def _process(self, number: int, line: ProcessLine) -> None:
        if line.current:
            if line.contact in self._current:
                raise ImportRefused(f"line {number}: a second current process of {line.contact}")
            self._current.add(line.contact)

    def _message(self, number: int, line: MessageLine) -> None:
        ms, _, seq = line.id.partition("-")
        this = (int(ms), int(seq))
        last = self._last_message.get(line.contact)
        if last is not None and this <= last:
            raise ImportRefused(
                f"line {number}: message {line.id} of contact {line.contact} is not after "
                "the one before it"
            )
        self._last_message[line.contact] = this


def validate(path: Path) -> Plan:
    """Check the whole file; nothing is written (the first pass)."""
    plan = Plan()
    number = 0
    for number, raw in read_lines(path):
        plan.check(number, parse(number, raw))
    if number == 0:
        raise ImportRefused("the file is empty")
    if not plan.ended:
        raise ImportRefused(f"the file ends at line {number} without its end line (cut off?)")
    if not plan.lines["state"]:
        raise ImportRefused("the file has no state line (the counters)")
    return plan


async def ensure_empty(redis: Redis) -> None:
    """Refuse a target that holds gateway data, or that a gateway is using.

    Empty streams and their consumer groups are allowed: a gateway that was started
    once and received nothing leaves them behind.
    """
    async for raw in redis.scan_iter(match=f"{keys.PREFIX}:*", count=1000):
        key = text(raw)
        if key == IMPORT_MARKER:
            raise ImportRefused(
                f"an earlier import into this Redis did not finish ({key}): empty it "
                "(FLUSHDB) and import again"
            )
        if key.startswith(f"{keys.PREFIX}:lease:"):
            raise ImportRefused(f"a gateway is using this Redis ({key}): stop every replica first")
        if key.startswith(f"{keys.PREFIX}:members:"):
            continue
        stream = fate(key) is Fate.TRANSIENT and text(await redis.type(key)) == "stream"
        if stream and await redis.xlen(key) == 0:
            continue
        raise ImportRefused(
            f"this Redis already holds gateway data ({key}); import restores into an empty one only"
        )


def _again(number: int, raw: str) -> Any:
    """A line read the second time (it passed the first: unless the file changed)."""
    try:
        return LINE.validate_json(raw)
    except ValidationError:
        raise ImportRefused(f"line {number} changed while it was being imported") from None


async def write(redis: Redis, settings: Settings, path: Path, plan: Plan) -> None:
    """The second pass: write every line (the file passed :func:`validate`)."""
    assert plan.header is not None
    await ensure_empty(redis)
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    await redis.set(IMPORT_MARKER, json.dumps({"file": str(path), "lines": plan.lines.total()}))
    number, batches = 0, Batches(redis)
    batch: list[Command] = []
    try:
        for number, raw in read_lines(path):
            for command in commands_for(_again(number, raw), plan, settings, now_ms):
                if len(command) > MAX_ARGS:
                    await redis.execute_command(*command)  # type: ignore[no-untyped-call]
                else:
                    batch.append(command)
            if len(batch) >= BATCH:
                await batches.write(batch)
                batch = []
        await batches.write(batch)
    except Exception as exc:
        await _undo(redis, settings, path, plan, number, exc)
        raise  # pragma: no cover - _undo always raises
    await redis.delete(IMPORT_MARKER)


async def _undo(
    redis: Redis, settings: Settings, path: Path, plan: Plan, number: int, exc: Exception
) -> None:
    """Delete every key the file writes (the target was empty before), then refuse."""
    failed = f"writing failed near line {number}: {exc}"
    try:
        batch: set[str] = set()
        for n, raw in read_lines(path):
            commands: list[Command] = commands_for(_again(n, raw), plan, settings, 0)
            batch.update(str(command[1]) for command in commands)
            if len(batch) >= BATCH:
                await redis.unlink(*batch)
                batch.clear()
        if batch:
            await redis.unlink(*batch)
        await redis.delete(IMPORT_MARKER)
    except Exception as again:
        raise ImportRefused(
            f"{failed}; removing what was written failed too ({again}): the target holds a "
            "partial import — empty it (FLUSHDB) before importing again"
        ) from exc
    raise ImportRefused(f"{failed}; everything written was removed again") from exc
