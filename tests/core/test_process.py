"""The business-process rule under any interleaving of messages, replies, commands
and midnights (hypothesis), plus the rule's exact cases."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import process as bp
from gateway.hours import Schedule
from gateway.process import Process, RuleError, Sla, Status

SLA = Sla(
    first_response=timedelta(minutes=15),
    next_response=timedelta(minutes=30),
    auto_close_after=timedelta(minutes=60),
    take_within=timedelta(minutes=10),
)
START = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)  # a DST change lies ahead in New York


class Numbers:
    def __init__(self) -> None:
        self.per_day: Counter[date] = Counter()

    def __call__(self, day: date) -> str:
        self.per_day[day] += 1
        return f"BP-{day:%Y%m%d}-{self.per_day[day]:04d}"


actions = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("in", "in", "in", "reply", "take", "transfer", "close", "reopen"),
                *("auto", "read", "escalate", "assign", "to_role"),
            ]
        ),
        st.integers(min_value=0, max_value=30 * 3600),  # seconds to wait before it
        st.sampled_from(["anna", "boris"]),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(actions=actions, zone_name=st.sampled_from(["Europe/Moscow", "America/New_York"]))
def test_invariants_hold_for_any_interleaving(
    actions: list[tuple[str, int, str]], zone_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    numbers = Numbers()
    current: Process | None = None
    archive: list[Process] = []
    at = START
    for action, wait, operator in actions:
        at += timedelta(seconds=wait)
        before = current
        try:
            transition = _apply(action, current, at, operator, zone, numbers)
        except RuleError:
            continue
        if transition is None:
            continue
        if transition.archived is not None:
            archive.append(transition.archived)
        current = transition.process
        _check_step(action, before, transition, at, zone)
    if current is not None:
        _check_history([*archive, current], zone)


def _apply(
    action: str,
    current: Process | None,
    at: datetime,
    operator: str,
    zone: ZoneInfo,
    numbers: Numbers,
) -> bp.Transition | None:
    match action:
        case "in":
            return bp.inbound(current, at, zone=zone, sla=SLA, number_for=numbers)
        case "reply":
            return bp.reply(current, at, operator)
        case "take":
            return bp.take(current, at, operator)
        case "transfer":
            return bp.transfer(current, at, "anna", "700002", SLA)
        case "to_role":
            return bp.transfer(current, at, operator, "sales", SLA)
        case "escalate":
            return bp.escalate(current, at)
        case "assign":
            return bp.assign(current, at, "700001" if operator == "anna" else "700002")
        case "close":
            return bp.close(current, at, operator, "done")
        case "reopen":
            return bp.reopen(current, at, operator, zone=zone)
        case "read":
            return bp.mark_read(current, at, operator)
        case _:
            return bp.auto_close(current, at, SLA)


def _check_step(
    action: str, before: Process | None, t: bp.Transition, at: datetime, zone: ZoneInfo
) -> None:
    after = t.process
    task = after.task
    # Never two open tasks: in a process only the last may be open...
    assert all(not x.is_open for x in after.tasks[:-1])
    # ...and a replaced process has nothing open.
    if t.archived is not None:
        assert not t.archived.task.is_open
    # Waiting to be taken is the only state with an escalation clock.
    if task.status is Status.IN_WORK or not task.is_open:
        assert task.take_by is None or not task.is_open
    if action == "escalate":
        assert before is not None and before.task.take_by is not None
        assert before.task.take_by <= at and task.take_by is None
        assert after.with_task(replace(task, take_by=before.task.take_by)) == before
    if action in ("transfer", "to_role"):
        assert task.status is Status.RETURNED and task.take_by == SLA.take_by(at)
    if action == "assign":
        assert before is not None and bp.waits_for_owner(before.task)
        assert not bp.waits_for_owner(task) and task.status is before.task.status
    if action == "read":
        # Reading is not answering: only who saw it, and when, change.
        assert before is not None and not task.unread
        assert after.with_task(before.task) == before
        assert (task.status, task.awaiting_reply) == (
            before.task.status,
            before.task.awaiting_reply,
        )
    if action != "in":
        # Only a customer's message moves a deadline or opens anything.
        assert before is not None and after.number == before.number
        assert len(after.tasks) == len(before.tasks)
        assert task.respond_by == before.task.respond_by
        return
    day = bp.local_day(at, zone)
    assert after.day == day
    if before is None or before.day != day:
        assert after.number != (before.number if before else None)
        assert len(after.tasks) == 1
        old = before.task if before is not None else None
        if old is not None and old.is_open:
            closed = t.archived.task if t.archived else None
            assert closed is not None and closed.close_reason == bp.CARRIED_OVER
            assert closed.continued_in == after.number
            if old.awaiting_reply:
                assert task.respond_by == old.respond_by  # midnight never resets the clock
            else:
                assert task.respond_by == at + SLA.first_response
        else:
            assert task.respond_by == at + SLA.first_response
    else:
        old = before.task
        assert after.number == before.number  # never a second process the same day
        if not old.is_open:
            assert len(after.tasks) == len(before.tasks) + 1
            assert task.respond_by == at + SLA.first_response and task.status is Status.NEW
            assert task.take_by == at + timedelta(minutes=10)
        elif old.awaiting_reply:
            assert task.respond_by == old.respond_by  # a chatty customer cannot push it
        else:
            assert task.respond_by == at + SLA.next_response
    assert task.awaiting_reply and task.is_open


def _check_history(processes: list[Process], zone: ZoneInfo) -> None:
    days = [p.day for p in processes]
    assert days == sorted(days) and len(set(days)) == len(days)  # ≤ 1 process a day
    assert len({p.number for p in processes}) == len(processes)
    for p in processes:
        assert [t.number for t in p.tasks] == list(range(1, len(p.tasks) + 1))
    open_tasks = [t for p in processes for t in p.tasks if t.is_open]
    assert len(open_tasks) <= 1


# The rule's cases, spelled out --------------------------------------------------------

MSK = ZoneInfo("Europe/Moscow")


def _msk(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK)


def test_first_message_opens_process_and_task() -> None:
    t = bp.inbound(None, _msk(23, 10), zone=MSK, sla=SLA, number_for=Numbers())
    assert t.process.number == "BP-20261123-0001"
    assert t.process.task.status is Status.NEW
    assert t.process.task.respond_by == _msk(23, 10, 15)
    assert [e.type for e in t.events] == ["process.opened", "task.opened"]


def test_chatty_customer_cannot_move_the_deadline_but_an_answered_task_restarts_it() -> None:
    numbers = Numbers()
    p = bp.inbound(None, _msk(23, 10), zone=MSK, sla=SLA, number_for=numbers).process
    p = bp.inbound(p, _msk(23, 10, 10), zone=MSK, sla=SLA, number_for=numbers).process
    assert p.task.respond_by == _msk(23, 10, 15)
    p = bp.reply(p, _msk(23, 10, 12), "anna").process
    assert p.task.status is Status.IN_WORK and p.task.responsible == "anna"
    p = bp.inbound(p, _msk(23, 11), zone=MSK, sla=SLA, number_for=numbers).process
    assert p.task.respond_by == _msk(23, 11, 30)


def test_closed_task_then_new_message_opens_a_new_task_in_the_same_process() -> None:
    numbers = Numbers()
    p = bp.inbound(None, _msk(23, 10), zone=MSK, sla=SLA, number_for=numbers).process
    p = bp.close(p, _msk(23, 10, 5), "anna", None).process
    t = bp.inbound(p, _msk(23, 12), zone=MSK, sla=SLA, number_for=numbers)
    assert t.process.number == p.number and len(t.process.tasks) == 2
    assert t.process.task.respond_by == _msk(23, 12, 15)


def test_midnight_carries_an_open_task_over_and_keeps_its_deadline() -> None:
    numbers = Numbers()
    p = bp.inbound(None, _msk(23, 23, 55), zone=MSK, sla=SLA, number_for=numbers).process
    t = bp.inbound(p, _msk(24, 0, 5), zone=MSK, sla=SLA, number_for=numbers)
    assert t.process.number == "BP-20261124-0001"
    assert t.process.task.respond_by == _msk(24, 0, 10)  # yesterday's deadline
    assert t.archived is not None
    assert t.archived.task.close_reason == "carried_over"
    assert t.archived.task.continued_in == "BP-20261124-0001"
    assert [e.type for e in t.events] == ["task.closed", "process.opened", "task.opened"]


def test_close_reasons_are_enforced() -> None:
    p = bp.inbound(None, _msk(23, 10), zone=MSK, sla=SLA, number_for=Numbers()).process
    with pytest.raises(RuleError, match="reason is required"):
        bp.close(p, _msk(23, 11), "anna", None, reasons=("sold", "spam"), require_reason=True)
    with pytest.raises(RuleError, match="Unknown reason"):
        bp.close(p, _msk(23, 11), "anna", "bored", reasons=("sold", "spam"))
    closed = bp.close(p, _msk(23, 11), "anna", "sold", reasons=("sold", "spam")).process
    assert closed.task.close_reason == "sold"
    with pytest.raises(RuleError, match="no open task"):
        bp.close(closed, _msk(23, 12), "anna", "sold")


def test_auto_close_after_silence_following_a_reply() -> None:
    p = bp.inbound(None, _msk(23, 10), zone=MSK, sla=SLA, number_for=Numbers()).process
    assert bp.auto_close_due(p, SLA) is None  # nobody answered yet
    p = bp.reply(p, _msk(23, 10, 5), "anna").process
    assert bp.auto_close_due(p, SLA) == _msk(23, 11, 5)
    assert bp.auto_close(p, _msk(23, 11), SLA) is None
    done = bp.auto_close(p, _msk(23, 11, 5), SLA)
    assert done is not None and done.process.task.close_reason == "auto"


def test_transfer_and_take() -> None:
    p = bp.inbound(None, _msk(23, 10), zone=MSK, sla=SLA, number_for=Numbers()).process
    p = bp.take(p, _msk(23, 10, 1), "anna").process
    with pytest.raises(RuleError, match="already have"):
        bp.take(p, _msk(23, 10, 2), "anna")
    p = bp.transfer(p, _msk(23, 10, 3), "anna", "700002").process
    assert p.task.status is Status.RETURNED and p.task.transferred_to == "700002"
    p = bp.take(p, _msk(23, 10, 4), "700002").process
    assert p.task.status is Status.IN_WORK and p.task.responsible == "700002"


def test_escalation_clock_counts_working_time_and_restarts_on_transfer() -> None:
    office = Schedule(MSK, (((time(9), time(18)),),) * 5 + ((), ()))
    sla = replace(SLA, take_within=timedelta(minutes=30), hours=office)
    friday = datetime(2026, 11, 27, 17, 50, tzinfo=MSK)
    p = bp.inbound(None, friday, zone=MSK, sla=sla, number_for=Numbers()).process
    monday = datetime(2026, 11, 30, 9, 20, tzinfo=MSK)  # 10 min on Friday + 20 on Monday
    assert p.task.take_by == monday
    assert bp.escalate(p, monday - timedelta(seconds=1)) is None
    escalated = bp.escalate(p, monday)
    assert escalated is not None and [e.type for e in escalated.events] == ["task.escalated"]
    p = escalated.process
    assert p.task.take_by is None and bp.escalate(p, monday + timedelta(hours=1)) is None
    # Transferred to a role: a new wait, its own clock; assigning it picks a member.
    p = bp.transfer(p, monday + timedelta(minutes=40), "anna", "sales", sla).process
    assert bp.waits_for_owner(p.task) and p.task.take_by == datetime(
        2026, 11, 30, 10, 30, tzinfo=MSK
    )
    with pytest.raises(RuleError, match="already waiting"):
        bp.transfer(p, monday + timedelta(minutes=41), "anna", "sales", sla)
    assigned = bp.assign(p, monday + timedelta(minutes=42), "700002")
    assert assigned is not None and assigned.process.task.transferred_to == "700002"
    assert bp.assign(assigned.process, monday + timedelta(minutes=43), "700001") is None
    taken = bp.take(assigned.process, monday + timedelta(minutes=44), "700002").process
    assert taken.task.take_by is None and bp.escalate(taken, monday + timedelta(days=1)) is None


def test_overdue() -> None:
    p = bp.inbound(None, _msk(23, 10), zone=MSK, sla=SLA, number_for=Numbers()).process
    assert not bp.overdue(p, _msk(23, 10, 15))
    assert bp.overdue(p, _msk(23, 10, 16))
    assert not bp.overdue(bp.reply(p, _msk(23, 10, 16), "anna").process, _msk(23, 11))


def test_mark_read_needs_something_unread() -> None:
    opened = bp.inbound(None, _msk(23, 10), zone=MSK, sla=SLA, number_for=Numbers()).process
    assert opened.task.unread
    read = bp.mark_read(opened, _msk(23, 10, 5), "anna").process
    assert not read.task.unread and read.task.seen_by == "anna"
    assert read.task.respond_by == opened.task.respond_by and read.task.awaiting_reply
    with pytest.raises(RuleError, match="Nothing unread"):
        bp.mark_read(read, _msk(23, 10, 6), "boris")
    again = bp.inbound(read, _msk(23, 10, 7), zone=MSK, sla=SLA, number_for=Numbers()).process
    assert again.task.unread
    assert bp.minutes_late(again.task, _msk(23, 10, 14)) == 0
    assert bp.minutes_late(again.task, _msk(23, 10, 45)) == 30


@settings(max_examples=200, deadline=None)
@given(left=actions, right=actions, gap=st.integers(min_value=0, max_value=40 * 3600))
def test_merging_two_histories_keeps_one_open_task_and_the_earliest_deadline(
    left: list[tuple[str, int, str]], right: list[tuple[str, int, str]], gap: int
) -> None:
    zone = ZoneInfo("Europe/Moscow")
    numbers = Numbers()

    def run(steps: list[tuple[str, int, str]]) -> tuple[Process | None, datetime]:
        current, at = None, START
        for action, wait, operator in steps:
            at += timedelta(seconds=wait)
            try:
                transition = _apply(action, current, at, operator, zone, numbers)
            except RuleError:
                continue
            if transition is not None:
                current = transition.process
        return current, at

    a, a_at = run(left)
    b, b_at = run(right)
    at = max(a_at, b_at) + timedelta(seconds=gap)
    merged = bp.merge(a, b, at)
    everything = [*(merged.archived), *([merged.current] if merged.current else [])]
    assert sum(t.is_open for p in everything for t in p.tasks) <= 1
    if a is None or b is None:
        assert merged.current == (a or b) and merged.archived == ()
        return
    assert merged.current is not None and merged.current.day == max(a.day, b.day)
    waiting = [p.task.respond_by for p in (a, b) if p.task.is_open and p.task.awaiting_reply]
    if waiting:
        task = merged.current.task
        assert task.is_open and task.awaiting_reply
        assert task.respond_by == min(waiting)  # a merge never resets an SLA clock
