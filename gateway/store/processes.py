"""Business processes in Redis: the contact's current process, its archive, numbering,
and the events stream — changed atomically with whatever else a step must store.

A step reads the contact's process (one script, which also reserves the day's number
when a process may open), runs the pure rule (:mod:`gateway.process`), and commits the
new state, the archived process, the events *and the caller's own effects* (an outbound
job, the inbound entry's ack) in one script that first compares the stored process with
the one the step saw. A customer's message and an operator's command for the same
contact are handled by different partitions, so they can race; the compare makes the
loser start over from the winner's state, so two steps can never open two processes or
two tasks.

Each store remembers the process it last read or wrote per contact (a bounded LRU), so
a contact's next message skips the read: the commit's compare finds out when the memory
is stale — another worker or replica wrote, the contact was merged away, the event was
already applied — and that step alone starts over from a fresh read.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import date, datetime, timedelta
from operator import attrgetter

import structlog
from pydantic import TypeAdapter
from redis.asyncio.client import Pipeline

from gateway import process as bp
from gateway.bus import Bus
from gateway.config import Line, Settings
from gateway.errors import GatewayError
from gateway.jobs import StaffCard
from gateway.process import Process, Sla, Transition
from gateway.store import keys
from gateway.store.batch import batched
from gateway.store.events import record_event
from gateway.store.redis import Redis
from gateway.store.redis import text as _text
from gateway.store.writes import Writes, lua_run

log = structlog.get_logger(__name__)
PROCESS: TypeAdapter[Process] = TypeAdapter(Process)
MAX_ATTEMPTS = 20
REMEMBERED = 4096
"""Contacts whose process a store remembers (most recently used). An entry holds the
JSON and the parsed process: ~4 KB for a day's process of 4 tasks, so ~16 MB when
full."""

# KEYS: process, applied-marker, the contact's number reservation for the day, the
# day's counter, the contact. ARGV: day (ISO), reservation TTL, check the marker?, may a
# process open? Returns {process JSON or nil, applied (0/1), reserved number or nil,
# the contact it was merged into or nil}. A number is reserved only when a process may
# open and today's is not the current one.
_READ = """
local function day_of(raw)
  -- PROCESS.dump_json writes the fields in gateway.process.Process's order, number and
  -- day first, so the day is read without decoding the whole JSON; a number with
  -- escapes does not match and is decoded.
  local day = string.match(raw, '^{"number":"[^"\\\\]*","day":"([^"]*)"')
  return day or cjson.decode(raw)['day']
end
local merged = redis.call('HGET', KEYS[5], 'merged_into')
if merged then return {false, 0, false, merged} end
local raw = redis.call('GET', KEYS[1])
local applied = 0
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then applied = 1 end
local n = false
if applied == 0 and ARGV[4] == '1' and not (raw and day_of(raw) == ARGV[1]) then
  n = redis.call('GET', KEYS[3])
  if not n then
    n = redis.call('INCR', KEYS[4])
    redis.call('EXPIRE', KEYS[4], ARGV[2])
    redis.call('SET', KEYS[3], n, 'EX', ARGV[2])
  end
  n = tonumber(n)
end
return {raw or false, applied, n, false}
"""
# KEYS: process, applied-marker, the contact, the operators' load index. ARGV: the
# process JSON the step saw ('' = none, '*' = do not compare), check that the marker is
# still absent?, an operator ('' = no check), their capacity, then the writes
# (Writes.args). Runs the writes only if nothing changed since the read (and the
# contact was not merged away meanwhile): this is the compare-and-set that keeps two
# workers from both opening a process or a task. With an operator, also only if they
# are below capacity (returns 2 if not): two replicas assigning two tasks to the last
# free slot of one operator cannot both succeed.
_COMMIT = (
    """
if redis.call('HEXISTS', KEYS[3], 'merged_into') == 1 then return 0 end
if ARGV[1] ~= '*' then
  local current = redis.call('GET', KEYS[1]) or ''
  if current ~= ARGV[1] then return 0 end
  if ARGV[2] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
end
if ARGV[3] ~= '' and redis.call('ZCOUNT', KEYS[4], ARGV[3], ARGV[3]) >= tonumber(ARGV[4]) then
  return 2
end
"""
    + lua_run(5)
    + "return 1\n"
)


class ContactMerged(GatewayError):
    """The contact was merged into another: act on ``survivor`` instead."""

    def __init__(self, survivor: str) -> None:
        super().__init__(f"the contact was merged into {survivor}")
        self.survivor = survivor


Step = Callable[[Process | None, bp.NumberFor], Transition | None]
"""The rule to apply: current process (or None) and a numbering function → transition,
or None when the step changes nothing (the caller's effects are still stored)."""
Effects = Callable[[Writes, Transition | None], None]
"""What the caller stores in the same transaction, given the step's result (to queue,
for example, a confirmation that names it)."""


class ProcessStore:
    def __init__(
        self, redis: Redis, settings: Settings, *, card_stream: Callable[[str], str] | None = None
    ) -> None:
        """``card_stream`` names the staff stream of a contact (routed by the contact's
        id): every change then also queues a refresh of the contact's task card (in the
        same commit)."""
        self.redis = redis
        self.card_stream = card_stream
        self._read = redis.register_script(_READ)
        self._commit = redis.register_script(_COMMIT)
        self._known: OrderedDict[str, tuple[str, Process]] = OrderedDict()
        """Per contact, the process JSON this store last read or committed, and the
        process; the commit compares it with what is stored (see the module's note)."""
        self.once_ttl = settings.bus.dedup_ttl_days * 86400
        every = settings.reminders.interval_minutes
        self.remind_every = _minutes(every) if every else None
        self.zone = settings.zone
        self.number_format = settings.processes.number_format
        auto = settings.processes.auto_close_after_minutes
        self.sla = Sla(
            first_response=_minutes(settings.sla.first_response_minutes),
            next_response=_minutes(settings.sla.next_response_minutes),
            auto_close_after=_minutes(auto) if auto else None,
            take_within=_minutes(take) if (take := settings.sla.take_within_minutes) else None,
        )
        self._lines = {line.name: self._line_sla(line, settings) for line in settings.all_lines}
        self._slas = {}
        for channel in settings.channels:
            line = self._lines[settings.line_of(channel.id).name]
            hours = channel.working_hours
            self._slas[channel.id] = (
                replace(line, hours=hours.schedule(settings.zone)) if hours is not None else line
            )
        self._default_line = settings.default_line.name

    def _line_sla(self, line: Line, settings: Settings) -> Sla:
        """The global SLA with what the line sets instead (deadlines, working hours)."""
        own = line.sla
        first, then, take = (
            own.first_response_minutes,
            own.next_response_minutes,
            own.take_within_minutes,
        )
        return replace(
            self.sla,
            first_response=_minutes(first) if first else self.sla.first_response,
            next_response=_minutes(then) if then else self.sla.next_response,
            take_within=_minutes(take) if take else self.sla.take_within,
            hours=line.working_hours.schedule(settings.zone) if line.working_hours else None,
        )

    def sla_for(self, account: str) -> Sla:
        """The SLA of an account's customers: its line's, in its working hours (the
        account's own, else the line's)."""
        return self._slas.get(account) or self._lines[self._default_line]

    def sla_in(self, line: str | None) -> Sla:
        """The SLA of a line's tasks (for one moved there)."""
        return self._lines.get(line or self._default_line) or self._lines[self._default_line]

    async def current(self, contact_id: str) -> Process | None:
        raw = await self.redis.get(keys.process(contact_id))
        return PROCESS.validate_json(raw) if raw is not None else None

    async def overdue(self, now: datetime, limit: int = 50) -> list[tuple[str, Process]]:
        """Contacts waiting past their deadline, the longest-waiting first."""
        ids = await self.redis.zrangebyscore(
            keys.AWAITING, "-inf", int(now.timestamp() * 1000), start=0, num=limit
        )
        found = []
        for raw in ids:
            contact_id = _text(raw)  # type: ignore[arg-type]  # ZRANGEBYSCORE without scores
            process = await self.current(contact_id)
            if process is not None and bp.overdue(process, now):
                found.append((contact_id, process))
        return found

    async def archive(self, contact_id: str, limit: int = 50) -> list[Process]:
        """Older processes, newest first."""
        raws = await self.redis.lrange(keys.process_archive(contact_id), 0, limit - 1)
        return [PROCESS.validate_json(raw) for raw in raws]

    async def apply(
        self,
        contact_id: str,
        at: datetime,
        step: Step,
        effects: Effects | None = None,
        *,
        once: str | None = None,
        may_open: bool = False,
        room: tuple[str, int] | None = None,
    ) -> Transition | None:
        """Run ``step`` on the contact's process and commit it with ``effects``.

        Two round trips: one script reads the state (and, when ``may_open`` and a new
        day begins, reserves the day's number for this contact); one script commits
        the recorded writes only if the state is still what was read — otherwise the
        step runs again on the new state (a race with another worker). When this store
        remembers the contact's process (it read or wrote it last), the read is
        skipped: a commit that finds the memory stale, or a step that raises on it,
        starts over from a read.

        Each attempt runs ``step`` (unless the event was already applied), then
        ``effects`` once, then the commit; only the committed attempt's writes stay.

        ``once`` is the causing event's key: an event handled again (its entry was
        redelivered after the commit's reply was lost) does not apply the rule twice —
        a second customer message must not open a second task — but its effects are
        stored again (they are idempotent).

        ``room`` (operator id, capacity) commits only while that operator has fewer
        open tasks than their capacity; when they have not, nothing is stored and
        ``None`` is returned (an assignment that lost the last slot to another).
        """
        key = keys.process(contact_id)
        marker = keys.applied(once) if once is not None else key
        day = bp.local_day(at, self.zone)
        stamp = day.strftime("%Y%m%d")
        known = self._known.get(contact_id)
        if known is not None and may_open and known[1].day != day:
            known = None  # a new day may open a process: the read reserves its number
        current: Process | None
        for attempt in range(MAX_ATTEMPTS):
            n = None
            if known is not None:
                applied, (expected, current) = 0, known
            else:
                raw, applied, n, merged = await batched(
                    self._read,
                    keys=[
                        key,
                        marker,
                        keys.process_number(contact_id, stamp),
                        keys.process_seq(stamp),
                        keys.contact(contact_id),
                    ],
                    args=[
                        day.isoformat(),
                        int(keys.PROCESS_SEQ_TTL.total_seconds()),
                        "1" if once is not None else "0",
                        "1" if may_open else "0",
                    ],
                )
                if merged:
                    raise ContactMerged(_text(merged))
                current = PROCESS.validate_json(raw) if raw is not None and not applied else None
                expected = "*" if applied else (_text(raw) if raw is not None else "")
            writes = Writes()
            transition = None
            # What is stored if the commit succeeds (JSON, process): to remember.
            after: tuple[str, Process] | None = None
            if not applied:
                try:
                    transition = step(current, self._number_for(day, n))
                except Exception:
                    if known is None:
                        raise
                    # Refused on what this store remembers (say, a repeated close of a
                    # task it saw closed): the stored state decides, and the read also
                    # finds an event that was already applied. The attempt ends as a
                    # lost race does: its effects see no transition and are dropped.
                    if effects is not None:
                        effects(Writes(), None)
                    self._known.pop(contact_id, None)
                    known = None
                    continue
                if transition is not None:
                    after = (self._store(writes, contact_id, transition), transition.process)
                elif current is not None:
                    after = (expected, current)
                if once is not None:
                    writes.set(marker, 1, ex=self.once_ttl)
            if effects is not None:
                effects(writes, transition)
            if (
                transition is not None
                and self.card_stream is not None
                and _face(current) != _face(transition.process)
            ):
                # After the effects: the customer's message opens the topic (with its
                # header) before the card appears under it.
                card = StaffCard(out_id=f"card:{uuid.uuid4().hex}", contact_id=contact_id)
                writes.xadd(
                    self.card_stream(contact_id), Bus.fields(contact_id, card.model_dump_json())
                )
            operator, capacity = room if room is not None and transition else ("", 0)
            done = await batched(
                self._commit,
                keys=[key, marker, keys.contact(contact_id), keys.OWNED],
                args=[expected, "1" if once else "0", operator, capacity, *writes.args()],
            )
            if done == 2:
                log.info("routing.no_room", contact_id=contact_id, operator=operator)
                return None
            if done:
                if after is not None:
                    self._remember(contact_id, *after)
                else:
                    self._known.pop(contact_id, None)
                return transition
            self._known.pop(contact_id, None)
            if known is not None:
                known = None  # the memory was stale: read, no backoff (not a race yet)
                continue
            log.info("process.retry_after_race", contact_id=contact_id, attempt=attempt)
            # Jittered backoff, so racers do not collide again in lockstep.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
        raise RuntimeError(f"contact {contact_id}: process update kept racing")

    def _remember(self, contact_id: str, raw: str, process: Process) -> None:
        known = self._known
        known[contact_id] = (raw, process)
        known.move_to_end(contact_id)
        if len(known) > REMEMBERED:
            known.popitem(last=False)

    def _number_for(self, day: date, reserved: int | None) -> bp.NumberFor:
        """The numbering function for the step: the number reserved by the read (one
        per contact and day, so a step that lost a race gets the same one again)."""
        if reserved is None:
            return _no_new_number
        number = self.number_format.format(date=day, n=int(reserved))

        def number_for(_: date) -> str:
            return number

        return number_for

    def _store(self, pipe: Writes, contact_id: str, transition: Transition) -> str:
        """Record the transition; the process JSON it stores."""
        written = self.store_state(pipe, contact_id, transition.process)
        if transition.archived is not None:
            archive = keys.process_archive(contact_id)
            pipe.lpush(archive, PROCESS.dump_json(transition.archived))
            pipe.ltrim(archive, 0, keys.PROCESS_ARCHIVE_LIMIT - 1)
        for event in transition.events:
            record_event(pipe, contact_id, event)
        return written

    def store_state(self, pipe: Writes | Pipeline, contact_id: str, process: Process) -> str:
        """Write the contact's current process and the timers that follow from it; the
        process JSON written."""
        raw = PROCESS.dump_json(process)
        pipe.set(keys.process(contact_id), raw)
        # The auto-close timer follows the state, in the same transaction.
        timer = f"{keys.AUTO_CLOSE}:{contact_id}"
        due = bp.auto_close_due(process, self.sla)
        if due is None:
            pipe.zrem(keys.TIMERS, timer)
        else:
            pipe.zadd(keys.TIMERS, {timer: int(due.timestamp() * 1000)})
        # The reminder is armed at the deadline while the customer waits (NX: a reminder
        # already re-armed for later stays where it is) and cleared by an answer.
        remind = f"{keys.REMIND}:{contact_id}"
        task = process.task
        waiting = task.is_open and task.awaiting_reply
        respond_by = int(task.respond_by.timestamp() * 1000)
        if self.remind_every and waiting:
            pipe.zadd(keys.TIMERS, {remind: respond_by}, nx=True)
        else:
            pipe.zrem(keys.TIMERS, remind)
        # Escalation if nobody takes it (the step clears take_by once it fired).
        take = f"{keys.TAKE}:{contact_id}"
        if task.is_open and task.status is not bp.Status.IN_WORK and task.take_by is not None:
            pipe.zadd(keys.TIMERS, {take: int(task.take_by.timestamp() * 1000)})
        else:
            pipe.zrem(keys.TIMERS, take)
        # The operators' load follows the state too (see keys.OWNED): a task transferred
        # to someone counts for them at once, no longer for who handed it over.
        owner = task.transferred_to if task.status is bp.Status.RETURNED else task.responsible
        if task.is_open and owner and owner.isdigit():
            pipe.zadd(keys.OWNED, {contact_id: int(owner)})
        else:
            pipe.zrem(keys.OWNED, contact_id)
        if waiting:
            pipe.zadd(keys.AWAITING, {contact_id: respond_by})
        else:
            pipe.zrem(keys.AWAITING, contact_id)
        return raw.decode()

    @staticmethod
    def forget_state(pipe: Pipeline, contact_id: str) -> None:
        """Remove the contact's current process and its timers (it was merged away)."""
        pipe.delete(keys.process(contact_id))
        pipe.zrem(
            keys.TIMERS,
            f"{keys.AUTO_CLOSE}:{contact_id}",
            f"{keys.REMIND}:{contact_id}",
            f"{keys.TAKE}:{contact_id}",
        )
        pipe.zrem(keys.AWAITING, contact_id)
        pipe.zrem(keys.OWNED, contact_id)


def _no_new_number(day: date) -> str:
    raise AssertionError(f"no new process can open on {day}: today's is already open")


def _minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def _face(process: Process | None) -> tuple[object, ...] | None:
    """What the task card and the topic's title show of a process (everything but the
    time of the customer's latest message, which only feeds ``unread``): a step that
    changes none of it — a customer writing again while awaiting an answer — queues no
    card refresh. Time alone (overdue) refreshes cards through the reminders' timers."""
    if process is None:
        return None
    task = process.task
    return (process.number, process.title, len(process.tasks), _SHOWN(task), task.unread)


_SHOWN = attrgetter(*(f.name for f in fields(bp.Task) if f.name != "last_inbound_at"))
"""A task's fields but the time of the customer's latest message, as a tuple (in C: no
copy of the task with that field cleared)."""
