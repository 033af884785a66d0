"""``gateway simulate``: what a config would do with some messages, without a platform.

Replays inbound events through the real pipeline — contacts, the business-process
rule, routing, working hours, greetings and away messages, abuse protection — against
a throw-away embedded Redis and a virtual clock, and prints what would happen: the
contact, the process and task (status, owner, deadline), every staff post and notice,
every message the customer would get, and the timers (reminders, auto-close,
escalation) as the clock passes them. No platform is called. Admins try a config change
on a file of messages before deploying it.

Events, one JSON object a line (``#`` lines and blank lines are skipped):

- the short form: ``{"at": "2026-11-24T10:00:00+03:00", "account": "tg_shop",
  "user": "42", "name": "Ivan Petrov", "text": "Hello"}`` (``phone`` optional);
- the normalised form: an ``InboundEvent`` as the gateway stores it (``"type":
  "message"``, ``"key"``, ``"sender"``…);
- with ``--raw``: ``{"at": …, "account": …, "payload": {…}}``, the platform's own
  webhook body, parsed by that account's adapter;
- ``{"at": …}`` alone: only let the time pass (timers fire).

``--online 111,222`` (or ``all``) puts operators online, so routing has someone.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from gateway import process as bp
from gateway.app import App
from gateway.bus import Entry
from gateway.config import Settings
from gateway.jobs import (
    JOB,
    CustomerAuto,
    CustomerSend,
    StaffCard,
    StaffGeneral,
    StaffNotice,
    StaffPost,
    StaffReminder,
)
from gateway.model import (
    INBOUND,
    AccountId,
    Channel,
    ChatId,
    Content,
    InboundEvent,
    InboundMessage,
    Kind,
    MessageId,
    PlatformUserId,
    Sender,
)
from gateway.pipeline import routing_key
from gateway.staff.presence import Presence
from gateway.store import keys

INDENT = " " * 10


class VirtualClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def read_events(lines: TextIO) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"line {number}: not JSON: {exc}") from None
        if not isinstance(item, dict):
            raise SystemExit(f"line {number}: expected an object")
        item["_line"] = number
        yield item


class Simulation:
    def __init__(self, settings: Settings, out: TextIO, *, raw: bool, online: str) -> None:
        self.settings = settings
        self.out = out
        self.raw = raw
        self.online = online
        self.clock = VirtualClock(datetime.now(settings.zone))
        self.app: App | None = None
        self.seq = 0

    def say(self, text: str, indent: bool = True) -> None:
        for n, line in enumerate(text.splitlines() or [""]):
            self.out.write((INDENT if indent or n else "") + line + "\n")

    def when(self, at: datetime) -> str:
        return f"{at.astimezone(self.settings.zone):%d.%m %H:%M:%S}"

    async def run(self, lines: TextIO) -> None:
        with tempfile.TemporaryDirectory(prefix="gateway-simulate-") as tmp:
            settings = self.settings.model_copy(
                update={
                    "redis": self.settings.redis.model_copy(update={"url": None}),
                    "data_dir": Path(tmp),
                }
            )
            self.app = App(settings, workers=False, clock=self.clock)
            await self.app.start()
            try:
                first = True
                for item in read_events(lines):
                    at = self._at(item)
                    if first:
                        self.clock.now = at
                        await self._go_online(at)
                        first = False
                    await self._pass_time(at)
                    if set(item) - {"at", "_line"}:
                        await self._handle(self._event(item, at))
            finally:
                await self.app.stop()

    def _at(self, item: dict[str, Any]) -> datetime:
        raw = item.get("at") or (item.get("received_at") if "sender" in item else None)
        if not isinstance(raw, str):
            raise SystemExit(f'line {item["_line"]}: give the time as "at" (ISO 8601)')
        at = datetime.fromisoformat(raw)
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.settings.zone)
        return at

    async def _go_online(self, at: datetime) -> None:
        assert self.app is not None
        assert self.app.redis is not None
        ids = [str(o.id) for o in self.settings.staff.operators]
        wanted = ids if self.online == "all" else [x for x in self.online.split(",") if x]
        presence = Presence(self.app.redis, self.settings)
        for operator in wanted:
            await presence.set(operator, True, at)

    async def _pass_time(self, until: datetime) -> None:
        """Fire the timers due before ``until``, each at its own time."""
        assert self.app is not None
        assert self.app.redis is not None
        while True:
            due = await self.app.redis.zrange(keys.TIMERS, 0, 0, withscores=True)
            if not due or float(due[0][1]) > until.timestamp() * 1000:
                break
            member, score = (
                str(due[0][0], "utf-8") if isinstance(due[0][0], bytes) else str(due[0][0]),
                float(due[0][1]),
            )
            # A tick comes just after a timer is due, as in a running gateway.
            self.clock.now = datetime.fromtimestamp((score + 1) / 1000, self.settings.zone)
            kind = member.split(":")[0]
            self.say(f"{self.when(self.clock.now)}  ⏰ {kind}", indent=False)
            await self.app.scheduler.tick()
            await self._report()
        self.clock.now = max(self.clock.now, until)

    def _event(self, item: dict[str, Any], at: datetime) -> InboundEvent:
        if "type" in item and "key" in item:
            payload = {k: v for k, v in item.items() if not k.startswith("_") and k != "at"}
            return INBOUND.validate_python(payload)
        account = str(item.get("account") or "")
        channel = self.settings.channel(account)
        if channel is None:
            raise SystemExit(f"line {item['_line']}: no channel account {account!r}")
        if self.raw:
            assert self.app is not None
            events = self.app.adapters[account].parse(item.get("payload") or {}, at)
            if not events:
                raise SystemExit(f"line {item['_line']}: the {account} payload has no event")
            return events[0]
        self.seq += 1
        user = str(item.get("user") or "1")
        sender = Sender(
            account=AccountId(account),
            channel=Channel(channel.kind),
            user_id=PlatformUserId(user),
            chat_id=ChatId(user),
            display_name=str(item.get("name") or f"User {user}"),
            phone=item.get("phone"),
        )
        return InboundMessage(
            key=f"simulate:{account}:{user}:{self.seq}",
            sender=sender,
            message_id=MessageId(str(self.seq)),
            sent_at=at,
            received_at=at,
            content=Content(kind=Kind.TEXT, text=str(item.get("text") or "")),
        )

    async def _handle(self, event: InboundEvent) -> None:
        assert self.app is not None
        self.clock.now = max(self.clock.now, event.received_at)
        sender = event.sender
        said = event.content.text if isinstance(event, InboundMessage) else event.type
        self.say(
            f"{self.when(event.received_at)}  {sender.display_name} ({sender.channel.value} · "
            f"{sender.account}): {said}",
            indent=False,
        )
        bus = self.app.bus
        stream = bus.stream(keys.INBOUND, routing_key(event))
        await self.app.pipeline.handle(Entry(stream, "0-1", event.model_dump_json().encode()))
        await self._report(event)

    async def _report(self, event: InboundEvent | None = None) -> None:
        """What the step queued (every outbound job, in order), then the task."""
        assert self.app is not None
        assert self.app.redis is not None
        redis, bus = self.app.redis, self.app.bus
        touched: set[str] = set()
        for family in (keys.STAFF_OUT, keys.CUSTOMER_OUT):
            for partition in range(bus.partitions):
                stream = keys.stream(family, partition)
                for _, fields in await redis.xrange(stream) or []:
                    job = JOB.validate_json((fields or {})[b"e"])
                    touched.add(job.contact_id)
                    line = self._describe(job)
                    if line:
                        self.say(line)
                await redis.delete(stream)
        if event is not None:
            found = await self.app.pipeline.contacts.of_identity(
                event.sender.account, event.sender.user_id
            )
            if found is not None:
                touched.add(found)
        for contact_id in sorted(c for c in touched if c.isdigit()):
            process = await self.app.processes.current(contact_id)
            if process is not None:
                self.say(f"#{contact_id}: {self._task(process)}")

    def _describe(self, job: Any) -> str:
        match job:
            case StaffPost():
                return (
                    f"→ staff topic of #{job.contact_id}: {job.message.content.text or '[media]'}"
                )
            case StaffNotice() if job.contact_id == keys.SPAM:
                return "→ Spam topic: " + " ".join(job.text.splitlines())
            case StaffNotice() | StaffReminder():
                return f"→ staff topic of #{job.contact_id}: {job.text}"
            case StaffGeneral():
                where = "privately to " + job.chat if job.chat and job.chat[0] != "-" else "General"
                return f"→ {where}: {job.text}"
            case CustomerAuto():
                return f"→ customer via {job.destination.account} ({job.what}): {job.content.text}"
            case CustomerSend():
                return f"→ customer via {job.destination.account}: {job.content.text}"
            case StaffCard():
                return ""
        return f"→ {job.type}"

    def _task(self, process: bp.Process) -> str:
        task = process.task
        owner = self.app.pipeline.tasks.name_of(task.responsible) if self.app else ""
        text = f"{process.number} task {task.number} {task.status.value}"
        if task.responsible:
            text += f" · {owner}"
        if task.is_open and task.awaiting_reply:
            text += f" · respond by {self.when(task.respond_by)}"
        if task.line:
            text += f" · line {task.line}"
        if not task.is_open and task.close_reason:
            text += f" · closed: {task.close_reason}"
        return text
