"""``/contacts/{id}/messages``: a person's history, and sending them a message.

History reads the same per-contact streams ``/history`` does, the person's and those of
every contact merged into them, merged by entry id (the order the gateway handled the
messages in); each record's ``id`` is its stream entry id, stable for deduplication.

A send is queued like the gateway's own messages to customers (greetings, away
messages: a :class:`~gateway.jobs.CustomerAuto` job on the contact's ``out:customer``
partition), in the order of the operators' replies, paced by the platform's rate
limits, retried on transient errors, sent once (its id is the job's done marker); once
sent or refused, staff see it in the person's topic ("🤖 Sent the API message …").
With ``operator`` it counts as that operator's answer: in the same commit the task is
answered (and taken by them if nobody had it) and the customer's messages are marked
read, exactly as their reply in the topic does. The history record and the
``message.outbound`` event are written in that commit too.

Who may be written to is decided as for an operator's ``/new`` (see
:mod:`gateway.staff.reach`): a person who never wrote to a Telegram or Viber bot, or
who denied a VK community or unsubscribed, is refused (409 ``no_route``, saying why);
someone known by phone only is written to through WhatsApp, where outside the 24-hour
window only a template goes (409 ``template_required`` otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

import structlog
from pydantic import Field, model_validator

from gateway import process as bp
from gateway.api.actions import OPERATOR_ID, as_actor, configured_operator
from gateway.api.errors import ApiError, conflict, invalid, not_found
from gateway.api.paging import PageQuery
from gateway.api.registry import Call, In, Out, Routes
from gateway.api.schemas import ContactPath, Page
from gateway.config import WhatsAppChannel
from gateway.jobs import CustomerAuto
from gateway.model import ContactId, Content, Destination, Kind, Template
from gateway.process import Process, Transition
from gateway.staff.desk import Desk
from gateway.staff.reach import Reacher, Unreachable
from gateway.store import keys
from gateway.store.processes import ContactMerged
from gateway.store.redis import text
from gateway.worker import Writer

log = structlog.get_logger(__name__)
routes = Routes("messages", "A person's messages in and out, and sending them one.")
Order = Literal["newest", "oldest"]
SEND_ID = r"^api:[a-z][a-z0-9_-]{0,31}:send_message:[A-Za-z0-9_.:-]{1,64}$"


class HistoryQuery(PageQuery):
    order: Order = "newest"
    """``newest`` first (page back in time) or ``oldest`` first (follow what is new)."""


class MessageOut(Out):
    id: str
    """The record's stream entry id (``1732345500000-0``), unique within ``contact_id``."""
    contact_id: str
    """Whose stream it is in (the person's, or a contact merged into them)."""
    direction: Literal["in", "out"]
    at: datetime
    channel: str
    account: str
    kind: str
    text: str
    """Shortened to 1000 characters."""
    operator: str | None
    """Who answered (an operator's id, or ``api:<name>``)."""
    process: str | None
    task: int | None
    message_id: str | None
    """The platform's id of the message (for replies: the operator's message in the topic)."""
    file_id: str | None


class MessagePage(Page):
    items: list[MessageOut]


class TemplateIn(In):
    name: str = Field(min_length=1, max_length=512)
    """One of the WhatsApp account's ``templates``."""
    parameters: list[str] = Field(default_factory=list, max_length=20)


class SendIn(In):
    text: str | None = Field(None, min_length=1, max_length=4096)
    template: TemplateIn | None = None
    """A WhatsApp template instead of text (outside the 24-hour window only templates
    reach the customer)."""
    account: str | None = Field(None, min_length=1, max_length=64)
    """The channel account to send through (the person must have an identity there);
    by default the one they wrote from last."""
    operator: str | None = Field(None, pattern=OPERATOR_ID)
    """Send on behalf of this operator: it answers the task, as their reply would."""

    @model_validator(mode="after")
    def _one(self) -> SendIn:
        if (self.text is None) == (self.template is None):
            raise ValueError("give either text or template")
        return self


class SendResult(Out):
    id: str
    """The send's id: ``GET /api/v1/outbound/{id}`` says what became of it."""
    contact_id: str
    account: str
    channel: str
    status: Literal["queued"]
    applied: bool
    """``false``: this ``Idempotency-Key`` was used before; nothing more was queued."""


class OutboundPath(In):
    send_id: str = Field(pattern=SEND_ID)


class OutboundStatus(Out):
    id: str
    status: Literal["queued", "sent", "failed"]
    message_ids: list[str]
    """The message(s) the platform created (sent)."""
    reason: str | None
    """Why it failed, when the platform said (the topic shows it too)."""


async def _streams(desk: Desk, person: ContactId) -> list[str]:
    """The person and every contact merged into them, however deep (a contact that had
    absorbed others before it was absorbed itself)."""
    found, queue = [str(person)], [str(person)]
    while queue:
        for raw in await desk.redis.smembers(keys.contact_absorbed(queue.pop())):
            absorbed = text(raw)
            if absorbed not in found:
                found.append(absorbed)
                queue.append(absorbed)
    return found


def _key(entry: str, contact: str) -> tuple[int, int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0), int(contact)


@routes.route(
    "GET",
    "/contacts/{contact_id}/messages",
    scope="read",
    path_params=ContactPath,
    query=HistoryQuery,
    response=MessagePage,
    errors=(404,),
)
async def list_messages(call: Call) -> MessagePage:
    """A person's messages, in and out

    Every messenger's, merged contacts' included, kept for ``history.retention_days``."""
    desk, query = call.desk, call.query(HistoryQuery)
    contact_id = ContactId(call.path(ContactPath).contact_id)
    if not await desk.contacts.exists(contact_id):
        raise not_found("No such contact.")
    after = _cursor(query.cursor)
    newest = query.order == "newest"
    records: list[MessageOut] = []
    for stream in await _streams(desk, await desk.contacts.survivor(contact_id)):
        name, bound = keys.history(stream), f"{after[0]}-{after[1]}" if after else None
        # One more than a page tells whether there is more; the bound is inclusive (the
        # cursor's own record comes back and is dropped below), so one more again.
        count = query.limit + (2 if bound else 1)
        if newest:
            entries = await desk.redis.xrevrange(name, max=bound or "+", count=count)
        else:
            entries = await desk.redis.xrange(name, min=bound or "-", count=count)
        for entry, fields in entries or []:
            record = _record(text(entry or b""), stream, fields or {}, desk.settings.zone)
            key = _key(record.id, stream)
            if after is None or (key < after if newest else key > after):
                records.append(record)
    records.sort(key=lambda r: _key(r.id, r.contact_id), reverse=newest)
    page = records[: query.limit]
    more = len(records) > query.limit
    last = page[-1] if page and more else None
    cursor = f"{last.id}.{last.contact_id}" if last is not None else None
    return MessagePage(items=page, next_cursor=cursor)


def _cursor(value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    entry, _, contact = value.partition(".")
    try:
        key = _key(entry, contact)
    except ValueError:
        key = (-1, 0, 0)
    if not (0 <= key[0] < 2**64 and 0 <= key[1] < 2**64 and 0 < key[2] < 10**19):
        raise invalid(["query", "cursor"], "Not a cursor this API gave.")
    return key


def _record(
    entry: str, contact: str, raw: Mapping[bytes | str, bytes | str], zone: ZoneInfo
) -> MessageOut:
    f = {text(k): text(v) for k, v in raw.items()}
    task = f.get("task", "")
    return MessageOut(
        id=entry,
        contact_id=contact,
        direction="in" if f.get("dir") == "in" else "out",
        at=datetime.fromisoformat(f["at"]).astimezone(zone),
        channel=f.get("channel", ""),
        account=f.get("account", ""),
        kind=f.get("kind", ""),
        text=f.get("text", ""),
        operator=f.get("operator") or None,
        process=f.get("process") or None,
        task=int(task) if task.isdigit() else None,
        message_id=f.get("msg") or None,
        file_id=f.get("file") or None,
    )


@routes.route(
    "POST",
    "/contacts/{contact_id}/messages",
    scope="write",
    path_params=ContactPath,
    body=SendIn,
    response=SendResult,
    status=202,
    errors=(404, 409),
    idempotent=True,
)
async def send_message(call: Call) -> SendResult:
    """Send the person a message

    Queued durably and answered at once (202); ``GET /api/v1/outbound/{id}`` tells when
    it was sent or why not, and the person's topic shows it. The messenger is
    ``account`` or, by default, the one the person wrote from last."""
    desk, body = call.desk, call.body(SendIn)
    contact_id = ContactId(call.path(ContactPath).contact_id)
    if not await desk.contacts.exists(contact_id):
        raise not_found("No such contact.")
    person = await desk.contacts.survivor(contact_id)
    if body.account is not None and desk.settings.channel(body.account) is None:
        raise invalid(["body", "account"], f"No channel account {body.account!r}.")
    try:  # the messengers' rules for writing first, as /new applies them
        reach = await Reacher(desk.redis, desk.settings, desk.contacts).reach(
            person, call.now, body.account
        )
    except Unreachable as exc:
        raise conflict(f"Cannot write to them: {exc}.", code="no_route") from None
    account, chat, channel = reach.account, reach.chat, reach.channel
    if reach.note and body.template is None:
        raise conflict(reach.note, code="template_required")
    operator = configured_operator(call, body.operator) if body.operator is not None else None
    if body.operator is not None:
        refused = desk.may_not_send(body.operator, account)
        if refused is not None:
            raise ApiError(403, refused.removeprefix("⚠️ "), code="operator_may_not_send")
    content = _content(body, channel)
    who = f"{call.client.name}, for {operator.name}" if call.client and operator else None
    job = CustomerAuto(
        out_id=call.once,
        contact_id=person,
        destination=Destination(account=account, chat_id=chat),
        content=content,
        what=f"API message ({who or (call.client.name if call.client else 'api')})",
    )
    read = await desk.read_receipt(person, account, channel) if body.operator is not None else None
    at, ran, applied = call.now, False, False

    def step(current: Process | None, _: bp.NumberFor) -> Transition | None:
        nonlocal ran
        ran = True
        if body.operator is None:
            return None  # a message of the business's, not an answer: the task stays
        try:
            answered = bp.reply(current, at, body.operator)
        except bp.RuleError:
            return None  # no open task: the message still goes out
        return as_actor(answered, call.actor, operator=body.operator)

    def effects(pipe: Writer, transition: Transition | None) -> None:
        # Called once per attempt, after the step when it ran: an attempt that lost a
        # race to a twin request (same key) finds the key used and runs no step.
        nonlocal ran, applied
        applied, ran = ran, False
        if not applied:
            return  # the Idempotency-Key was used: all of it is queued already
        desk.queue(pipe, job, read)
        desk.history.append(
            pipe,
            person,
            direction="out",
            at=at,
            channel=channel.kind,
            account=account,
            content=content,
            message_id="",
            operator=body.operator or call.actor,
            process=transition.process.number if transition else "",
            task=transition.process.task.number if transition else None,
        )

    try:
        await desk.processes.apply(person, at, step, effects, once=call.once)
    except ContactMerged:  # merged meanwhile: the client may retry with the same key
        raise ApiError(503, "The contact was merged just now; retry.") from None
    log.info("api.message_queued", contact_id=person, account=account, actor=call.actor)
    return SendResult(
        id=call.once,
        contact_id=person,
        account=account,
        channel=channel.kind,
        status="queued",
        applied=applied,
    )


def _content(body: SendIn, channel: object) -> Content:
    """The text, or the template as ``/template`` builds it (checked against the config)."""
    if body.template is None:
        return Content(kind=Kind.TEXT, text=body.text)
    if not isinstance(channel, WhatsAppChannel):
        raise invalid(["body", "template"], "Templates are WhatsApp's; this account is not.")
    chosen = next((t for t in channel.templates if t.name == body.template.name), None)
    if chosen is None:
        names = ", ".join(t.name for t in channel.templates) or "none configured"
        raise invalid(["body", "template", "name"], f"Not a template of {channel.id} ({names}).")
    args = body.template.parameters
    if len(args) != chosen.parameters:
        raise invalid(
            ["body", "template", "parameters"], f"{chosen.name} takes {chosen.parameters}."
        )
    preview = chosen.text or chosen.name
    for n, value in enumerate(args, start=1):
        preview = preview.replace(f"{{{{{n}}}}}", value)
    template = Template(name=chosen.name, language=chosen.language, parameters=tuple(args))
    return Content(kind=Kind.TEXT, text=f"📋 {preview}", template=template)


@routes.route(
    "GET",
    "/outbound/{send_id}",
    scope="read",
    path_params=OutboundPath,
    response=OutboundStatus,
    errors=(404,),
)
async def get_outbound(call: Call) -> OutboundStatus:
    """What became of a message sent through the API

    ``queued`` until the platform answered; then ``sent`` (with the platform's message
    ids) or ``failed``. A client sees only its own sends; they are known for
    ``bus.dedup_ttl_days``."""
    send_id = call.path(OutboundPath).send_id
    if call.client is None or not send_id.startswith(f"{call.actor}:"):
        raise not_found("No such send of this client.")
    async with call.desk.redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.done(send_id))
        pipe.exists(keys.applied(send_id))
        done, queued = await pipe.execute()
    if done is None:
        if not queued:
            raise not_found("No such send of this client.")
        return OutboundStatus(id=send_id, status="queued", message_ids=[], reason=None)
    outcome = json.loads(text(done))
    if isinstance(outcome, dict):  # an operator-style send refused: {"failed": reason}
        return OutboundStatus(
            id=send_id, status="failed", message_ids=[], reason=str(outcome.get("failed"))
        )
    ids = [str(i) for i in outcome]
    # A send that reached the platform has its message ids; one refused has none.
    return OutboundStatus(
        id=send_id, status="sent" if ids else "failed", message_ids=ids, reason=None
    )
