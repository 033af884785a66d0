"""Acting on a contact's current task: take, assign, transfer, close.

Each action is the staff side's own: the rule step of :class:`TaskCommands` (or
:func:`gateway.process.assign`, as routing hands out tasks), applied by the process
store's compare-and-set with its confirmation queued in the same commit — so the task
card in the topic is refreshed, the events are recorded and the freed operator gets a
waiting task (:func:`after_close`) exactly as when an operator presses the button. The
events name the API client as the actor (``api:<token name>``); when the action is done
for an operator (take, assign) the event's data names them (``operator``).

``process`` and ``task`` in a body make the action conditional: it happens only if the
current task is still that one (else 409 ``stale``), checked inside the same
compare-and-set, so a CRM never closes a task newer than the one it looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import structlog
from pydantic import Field

from gateway import process as bp
from gateway.api.errors import ApiError, conflict, invalid, not_found
from gateway.api.processes import CurrentTask, current_view
from gateway.api.registry import Call, In, Routes
from gateway.api.schemas import ContactPath
from gateway.config import Operator
from gateway.jobs import StaffNotice, _Job
from gateway.model import ContactId
from gateway.process import Process, Transition
from gateway.routing import assigned
from gateway.staff.transfers import announce
from gateway.staff.waiting import after_close
from gateway.store.processes import ContactMerged
from gateway.worker import Writer

log = structlog.get_logger(__name__)
routes = Routes("tasks", "Acting on a contact's current task, as operators do in its topic.")
OPERATOR_ID = r"^[1-9][0-9]{0,18}$"


class _Expect(In):
    process: str | None = Field(None, min_length=1, max_length=64)
    """Act only if the current process is this one (else 409 ``stale``)."""
    task: int | None = Field(None, ge=1)
    """Act only if the current task has this number (else 409 ``stale``)."""


class TakeIn(_Expect):
    operator: str = Field(pattern=OPERATOR_ID)
    """The operator (Telegram id) who takes it: they become responsible."""


class AssignIn(_Expect):
    operator: str = Field(pattern=OPERATOR_ID)
    """The operator (Telegram id) to route it to; it waits until they take or answer it."""


class TransferIn(_Expect):
    to: str = Field(min_length=1, max_length=64)
    """An operator (Telegram id or name) or a role: as ``/transfer``."""


class CloseIn(_Expect):
    reason: str | None = Field(None, min_length=1, max_length=200)
    """One of the account's ``close_reasons`` when it has a list (required with
    ``require_close_reason``)."""


class ActionResult(CurrentTask):
    applied: bool
    """``false`` when this ``Idempotency-Key`` was used before: nothing changed now, and
    the task is shown as it is."""


Rule = Callable[[Process | None], Transition | None]
Jobs = Callable[[ContactId, Transition], list[_Job]]


def as_actor(transition: Transition | None, actor: str, **data: str) -> Transition | None:
    """The transition with its events recorded as the API client's doing."""
    if transition is None:
        return None
    events = tuple(replace(e, actor=actor, data={**e.data, **data}) for e in transition.events)
    return replace(transition, events=events)


def _stale(expect: _Expect, current: Process | None) -> None:
    if current is None:
        return  # the rule itself says there is no open task
    if (expect.process is not None and expect.process != current.number) or (
        expect.task is not None and expect.task != current.task.number
    ):
        raise conflict(
            f"The current task is {current.number}, task {current.task.number}.", code="stale"
        )


async def _act(
    call: Call,
    expect: _Expect,
    rule: Rule,
    jobs: Jobs,
    room: tuple[str, int] | None = None,
    *,
    closing: bool = False,
    **data: str,
) -> tuple[ActionResult, bool]:
    """Apply ``rule`` to the contact's current task, with the ``jobs`` it causes in the
    same commit (and, ``closing``, the satisfaction survey, as a close by staff asks
    it). Returns the task as it is now and whether the rule changed it (``False``: the
    rule returned nothing, or the operator had no room)."""
    desk = call.desk
    contact_id = ContactId(call.path(ContactPath).contact_id)
    if not await desk.contacts.exists(contact_id):
        raise not_found("No such contact.")
    person = await desk.contacts.survivor(contact_id)
    ran = applied = False

    def step(current: Process | None, _: bp.NumberFor) -> Transition | None:
        nonlocal ran
        ran = True
        _stale(expect, current)
        return as_actor(rule(current), call.actor, **data)

    def effects(pipe: Writer, transition: Transition | None) -> None:
        # Once per attempt, after the step if it ran (it does not when a twin request
        # with the same key committed first): what the committed attempt did.
        nonlocal ran, applied
        applied, ran = ran, False
        if transition is not None:
            desk.queue(pipe, *jobs(person, transition))

    for _ in range(2):  # once more on the survivor, if a merge raced this request
        try:
            stored = (
                await call.gateway.pipeline.csat.asking(person, effects) if closing else effects
            )
            done = await desk.processes.apply(
                person, call.now, step, stored, once=call.once, room=room
            )
            break
        except ContactMerged as exc:
            person = ContactId(exc.survivor)
        except bp.RuleError as exc:
            raise conflict(str(exc)) from None
    else:  # pragma: no cover - merged twice within one request
        raise ApiError(503, "The contact is being merged; retry.")
    await after_close(desk.waiting, done, call.now, call.once)
    process = await desk.processes.current(person)
    if process is None:  # pragma: no cover - the rule refuses a contact without one
        raise conflict("There is no open task.")
    view = current_view(call, person, process)
    result = ActionResult(
        contact_id=view.contact_id, process=view.process, task=view.task, applied=applied
    )
    return result, done is not None


def _notice(call: Call, person: ContactId, text: str) -> StaffNotice:
    """The confirmation in the topic, as staff get one under their command."""
    return StaffNotice(
        out_id=f"notice:{call.once}", contact_id=person, text=f"{text} (by {call.actor})"
    )


async def _person(call: Call) -> ContactId:
    """The person the path's contact stands for now (itself, unless merged)."""
    return await call.desk.contacts.survivor(ContactId(call.path(ContactPath).contact_id))


def configured_operator(call: Call, user_id: str) -> Operator | None:
    """A configured operator (``None``: any id goes when ``staff.operators`` is empty)."""
    found = call.desk.operator(user_id)
    if found is None and call.desk.operators:
        raise invalid(["body", "operator"], f"No operator {user_id} in staff.operators.")
    return found


@routes.route(
    "POST",
    "/contacts/{contact_id}/task/take",
    scope="write",
    path_params=ContactPath,
    body=TakeIn,
    response=ActionResult,
    errors=(404, 409),
    idempotent=True,
)
async def take_task(call: Call) -> ActionResult:
    """Take the task for an operator

    As [Take] or ``/take`` by that operator: the task is theirs, ``in_work``."""
    body, at = call.body(TakeIn), call.now
    configured_operator(call, body.operator)

    def jobs(person: ContactId, transition: Transition) -> list[_Job]:
        return [_notice(call, person, call.desk.tasks.confirm("take", transition))]

    result, _ = await _act(
        call,
        body,
        lambda current: bp.take(current, at, body.operator),
        jobs,
        operator=body.operator,
    )
    log.info("api.task_taken", contact_id=result.contact_id, operator=body.operator)
    return result


@routes.route(
    "POST",
    "/contacts/{contact_id}/task/assign",
    scope="write",
    path_params=ContactPath,
    body=AssignIn,
    response=ActionResult,
    errors=(404, 409),
    idempotent=True,
)
async def assign_task(call: Call) -> ActionResult:
    """Assign a task nobody has to an operator

    As routing does: for a new task nobody took (or one transferred to a role), the
    operator is told in the topic ("📌 Assigned to …", a mention) and privately with
    ``staff.notify_privately``; it waits for them to take or answer it. Only within the
    operator's capacity (``max_chats``). A task someone has is transferred instead."""
    body, desk, at = call.body(AssignIn), call.desk, call.now
    operator = configured_operator(call, body.operator)
    if operator is None:
        raise invalid(["body", "operator"], "Assigning needs staff.operators (capacity, name).")

    def jobs(person: ContactId, _: Transition) -> list[_Job]:
        return assigned(desk.settings, operator, person, call.once, f"by {call.actor}")

    owned = False

    def rule(current: Process | None) -> Transition | None:
        nonlocal owned
        transition = bp.assign(current, at, body.operator)
        owned = transition is None
        return transition

    room = (body.operator, operator.max_chats)
    result, changed = await _act(call, body, rule, jobs, room=room, operator=body.operator)
    if result.applied and not changed:
        if owned:
            status = result.task.status.value
            raise conflict(f"The task is {status} with an owner: transfer it.", code="has_owner")
        raise conflict(
            f"{operator.name} is at capacity ({operator.max_chats}).", code="at_capacity"
        )
    log.info("api.task_assigned", contact_id=result.contact_id, operator=body.operator)
    return result


@routes.route(
    "POST",
    "/contacts/{contact_id}/task/transfer",
    scope="write",
    path_params=ContactPath,
    body=TransferIn,
    response=ActionResult,
    errors=(404, 409),
    idempotent=True,
)
async def transfer_task(call: Call) -> ActionResult:
    """Transfer the task to an operator or a role

    As ``/transfer``: it waits as ``returned`` until taken; the operator (or the role's
    available members) are mentioned in the topic, and a role's task is in ``/queue``."""
    body, desk, at = call.body(TransferIn), call.desk, call.now
    try:
        target = desk.tasks.target(body.to)
    except bp.RuleError as exc:
        raise invalid(["body", "to"], str(exc)) from None
    told = await desk.transfers.told(target, at)
    sla = desk.processes.sla_for(await desk.account_of(await _person(call)))

    def rule(current: Process | None) -> Transition | None:
        return bp.transfer(current, at, call.actor, target, sla)

    def jobs(person: ContactId, transition: Transition) -> list[_Job]:
        said = desk.tasks.confirm("transfer", transition)
        text, mentions = announce(f"{said} (by {call.actor})", target, told)
        return [
            StaffNotice(
                out_id=f"notice:{call.once}", contact_id=person, text=text, mentions=mentions
            )
        ]

    result, _ = await _act(call, body, rule, jobs, to=target)
    log.info("api.task_transferred", contact_id=result.contact_id, to=target)
    return result


@routes.route(
    "POST",
    "/contacts/{contact_id}/task/close",
    scope="write",
    path_params=ContactPath,
    body=CloseIn,
    response=ActionResult,
    errors=(404, 409),
    idempotent=True,
)
async def close_task(call: Call) -> ActionResult:
    """Close the task

    As [Close] or ``/close [reason]``; the account's ``close_reasons`` and
    ``require_close_reason`` apply. The operator who had it gets a waiting task if they
    have room again, and with ``channels[].csat`` the customer is asked to rate it."""
    body, desk, at = call.body(CloseIn), call.desk, call.now
    channel = desk.settings.channel(await desk.account_of(await _person(call)))
    reasons = channel.close_reasons if channel is not None else ()
    if body.reason is None and channel is not None and channel.require_close_reason:
        raise invalid(
            ["body", "reason"], f"A reason is required: {', '.join(reasons) or 'any text'}."
        )
    if body.reason is not None and reasons and body.reason not in reasons:
        raise invalid(["body", "reason"], f"Choose one of: {', '.join(reasons)}.")

    def rule(current: Process | None) -> Transition | None:
        required = channel.require_close_reason if channel is not None else False
        return bp.close(
            current, at, call.actor, body.reason, reasons=reasons, require_reason=required
        )

    def jobs(person: ContactId, transition: Transition) -> list[_Job]:
        return [_notice(call, person, desk.tasks.confirm("close", transition))]

    result, _ = await _act(call, body, rule, jobs, closing=True)
    log.info("api.task_closed", contact_id=result.contact_id, reason=body.reason)
    return result
