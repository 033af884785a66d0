"""Asking, taking the answer, and recording silence — each atomic with what it changes.

- **Asking** is part of the close: :meth:`Csat.asking` wraps a close path's effects, so
  the question (a durable ``CustomerAuto`` job), the survey and its timer are stored
  in the very commit that closes the task. A crash cannot close without asking, and a
  close handled twice (its entry redelivered) commits, and so asks, once.
- **The answer** is a WATCH/MULTI transaction over the survey, the chat's latest
  survey, the contact's process and archive and the event's answer marker: the rating
  on the task, ``task.rated``, the thanks, the topic's notice and the ack of the inbound
  entry commit together or not at all, and a redelivered rating finds its marker.
- **Silence**: the ``csat`` timer records ``task.rated`` ``none`` for every survey of
  the contact past its wait, and comes back for the next one.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from gateway import process as bp
from gateway.bus import Bus, Entry
from gateway.config import Settings
from gateway.contacts import Contacts
from gateway.csat.answers import parse_press, question, rating_of
from gateway.csat.survey import Outcome, Survey, locate, ms, parse_id, timer
from gateway.jobs import CallbackAnswer, CustomerAuto, StaffCard, StaffNotice, _Job
from gateway.model import (
    Channel,
    ChatId,
    ContactId,
    Content,
    Destination,
    InboundCallback,
    InboundMessage,
    Kind,
    Sender,
)
from gateway.process import Transition
from gateway.staff import render
from gateway.store import keys
from gateway.store.events import record_event
from gateway.store.lines import Lines
from gateway.store.processes import PROCESS, ProcessStore
from gateway.store.redis import text
from gateway.worker import Effects, Worker, Writer

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 20
ASKED = "satisfaction survey"
THANKED = "thanks for the rating"
Build = Callable[[Pipeline], None]


class Csat(Worker):
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        contacts: Contacts,
        lines: Lines,
        processes: ProcessStore,
    ) -> None:
        super().__init__(settings, bus, contacts, lines, processes)
        self.once_ttl = settings.bus.dedup_ttl_days * 86400
        self.counts: Counter[str] = Counter()
        """What this instance handled: ``rated``, ``rated:<n>``, ``none``, ``repeated``
        (a redelivered rating), ``closed`` (an answer to a finished survey)."""

    # Asking ---------------------------------------------------------------------------

    async def asking(self, contact_id: ContactId, effects: Effects) -> Effects:
        """``effects`` plus the survey, for a path that may close the task (an operator's
        button or command, the API): one read of where the customer writes from, and
        nothing more when that account does not survey its customers."""
        route = await self.contacts.reply_route(contact_id)
        channel = self.settings.channel(route[0]) if route is not None else None
        if route is None or channel is None or not channel.csat.enabled:
            return effects
        account, chat = route

        def build(pipe: Writer, transition: Transition | None) -> None:
            effects(pipe, transition)
            if transition is not None:
                self.ask(pipe, contact_id, transition, account, chat)

        return build

    def ask(
        self, pipe: Writer, contact_id: ContactId, transition: Transition, account: str, chat: str
    ) -> None:
        """Store the survey of the task ``transition`` closed, and queue the question —
        unless nobody closed it: auto-close, a new day's carry-over and a merge are the
        system's closes, and the customer is not asked about those."""
        closed = next((e for e in transition.events if e.type == "task.closed"), None)
        channel = self.settings.channel(account)
        if closed is None or closed.actor in (None, bp.SYSTEM) or channel is None:
            return
        wait = timedelta(hours=channel.csat.wait_hours)
        survey = Survey(
            contact=contact_id,
            process=closed.process,
            task=closed.task,
            account=channel.id,
            chat=ChatId(chat),
            asked_at=closed.at,
            due=closed.at + wait,
        )
        raw = survey.model_dump_json()
        seconds = math.ceil(wait.total_seconds())
        pipe.set(survey.key, raw, ex=seconds + int(keys.CSAT_MARGIN.total_seconds()))
        pipe.set(survey.chat_key, raw, ex=seconds)
        pipe.sadd(keys.csat_pending(contact_id), survey.id)
        # Not NX: a timer claimed right now must see its score change, or the scheduler
        # drops it after the handler ran (an earlier survey is then recorded late, at its
        # own due time).
        pipe.zadd(keys.TIMERS, {timer(contact_id): ms(survey.due)})
        ask = CustomerAuto(
            out_id=f"csat:{survey.id}:{ms(survey.asked_at)}",
            contact_id=contact_id,
            destination=Destination(account=survey.account, chat_id=survey.chat),
            content=question(Channel(channel.kind), channel.csat, survey.id),
            what=ASKED,
        )
        self.queue(pipe, ask)
        log.info("csat.asked", contact_id=contact_id, process=survey.process, task=survey.task)

    # Answers --------------------------------------------------------------------------

    async def answered(self, message: InboundMessage, entry: Entry) -> bool:
        """Take a customer's message as their rating if it is one. ``True``: handled here
        (rated, or a rating seen before); ``False``: an ordinary message. Texts that
        cannot be ratings cost nothing; those that can, one round trip when no survey
        waits in the chat."""
        if message.edited or message.content.kind is not Kind.TEXT:
            return False
        rating = rating_of(message.content.text)
        if rating is None:
            return False
        sender = message.sender
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.csat_chat(sender.account, sender.chat_id))
            pipe.exists(keys.csat_answer(message.key))
            raw, repeated = await pipe.execute()
        if repeated:
            self.counts[Outcome.REPEATED] += 1
            await self.commit(entry)
            return True
        if raw is None:
            return False
        survey = Survey.model_validate_json(raw)
        if message.received_at > survey.due:
            return False
        outcome = await self._rate(survey, rating, message.received_at, message.key, entry)
        return outcome in (Outcome.RATED, Outcome.REPEATED)

    async def pressed(self, press: InboundCallback, entry: Entry) -> None:
        """A customer pressed a survey's button (Telegram): rate, and answer the press so
        their client stops waiting; anything else gets a polite answer and changes
        nothing."""
        sender = press.sender
        parsed = parse_press(press.data)
        if parsed is None:
            log.warning("csat.unknown_press")
            await self.commit(entry, _answer(press, None, "This button does nothing."))
            return
        rating, survey_id = parsed
        where = parse_id(survey_id) if survey_id is not None else None
        if where is not None:
            raw = await self.redis.get(keys.csat_survey(*where))
        else:
            raw = await self.redis.get(keys.csat_chat(sender.account, sender.chat_id))
        survey = Survey.model_validate_json(raw) if raw is not None else None
        if survey is not None and (survey.account, survey.chat) != (sender.account, sender.chat_id):
            log.warning("csat.press_from_another_chat")  # forged data: not theirs to answer
            await self.commit(entry, _answer(press, None, "This button does nothing."))
            return
        if survey is not None and press.received_at <= survey.due:
            outcome = await self._rate(survey, rating, press.received_at, press.key, entry, press)
            if outcome in (Outcome.RATED, Outcome.REPEATED):
                return
        self.counts[Outcome.CLOSED] += 1
        contact_id = survey.contact if survey is not None else None
        said = "Thank you! This survey is already closed."
        await self.commit(entry, _answer(press, contact_id, said))

    async def _rate(
        self,
        survey: Survey,
        rating: int,
        at: datetime,
        event_key: str,
        entry: Entry,
        press: InboundCallback | None = None,
    ) -> Outcome:
        contact = await self.contacts.survivor(survey.contact)
        marker = keys.csat_answer(event_key)
        archive = keys.process_archive(contact)
        watched = (survey.key, survey.chat_key, marker, keys.process(contact), archive)
        for _ in range(MAX_ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*watched)
                    outcome, build = await self._rating(
                        pipe, survey, contact, rating, at, event_key, entry, press
                    )
                    if build is not None:
                        pipe.multi()  # type: ignore[no-untyped-call]
                        build(pipe)
                        await pipe.execute()
                except WatchError:
                    continue
            if outcome in (Outcome.RATED, Outcome.REPEATED):
                self.counts[outcome] += 1
            if outcome is Outcome.RATED:
                self.counts[f"rated:{rating}"] += 1
                log.info("csat.rated", contact_id=contact, process=survey.process, rating=rating)
            return outcome
        raise RuntimeError(f"rating {survey.id} kept racing")

    async def _rating(
        self,
        pipe: Pipeline,
        asked: Survey,
        contact: ContactId,
        rating: int,
        at: datetime,
        event_key: str,
        entry: Entry,
        press: InboundCallback | None,
    ) -> tuple[Outcome, Build | None]:
        """Read (under WATCH) and decide; the writes, if any, come back as ``build``."""
        if await pipe.exists(keys.csat_answer(event_key)):
            return Outcome.REPEATED, lambda p: self.bus.ack(p, entry)
        raw = await pipe.get(asked.key)
        if raw is None:
            return Outcome.CLOSED, None
        survey = Survey.model_validate_json(raw)  # re-asked since (reopened, closed): the newer
        if at > survey.due or survey.chat_key != asked.chat_key:
            return Outcome.CLOSED, None  # over, or now asked in another of their chats
        pointer = await pipe.get(survey.chat_key)
        target, index, current = await locate(pipe, contact, survey.process)
        if press is None and _answered_since(current, survey):
            return Outcome.NOT_A_RATING, None
        transition = bp.rate(target, survey.task, rating, at) if target is not None else None
        said = str(rating)
        channel = self.settings.channel(survey.account)
        destination = Destination(account=survey.account, chat_id=survey.chat)
        jobs: list[_Job | None] = [
            StaffNotice(
                out_id=f"csat-rated:{survey.id}:{ms(survey.asked_at)}",
                contact_id=contact,
                text=render.rated(rating, survey.process, survey.task),
            ),
            CustomerAuto(
                out_id=f"csat-thanks:{survey.id}:{ms(survey.asked_at)}",
                contact_id=contact,
                destination=destination,
                content=Content(kind=Kind.TEXT, text=channel.csat.thanks),
                what=THANKED,
            )
            if channel is not None
            else None,
            _answer(press, contact, "⭐" * rating + " Thank you!") if press else None,
        ]

        def build(p: Pipeline) -> None:
            self._store(p, contact, survey, transition, index, current, bp.CUSTOMER, at, rating)
            self._forget(p, survey, raw, pointer)
            p.set(keys.csat_answer(event_key), said, ex=self.once_ttl)
            self.queue(p, *jobs)
            self.bus.ack(p, entry)

        return Outcome.RATED, build

    # Silence ----------------------------------------------------------------------------

    async def expire(self, contact_id: str, now: datetime) -> None:
        """The ``csat`` timer: every survey of the contact past its wait is recorded as
        unanswered; the timer comes back when the next one is due."""
        pending = await self.redis.smembers(keys.csat_pending(contact_id))
        later = []
        for member in pending:
            due = await self._expire(ContactId(contact_id), text(member), now)
            if due is not None:
                later.append(due)
        if later:  # a changed score: the scheduler keeps the timer (see gateway.scheduler)
            await self.redis.zadd(keys.TIMERS, {timer(contact_id): ms(min(later))})

    async def _expire(
        self, contact_id: ContactId, survey_id: str, now: datetime
    ) -> datetime | None:
        """Record one survey unanswered if its wait is over; its due time if not yet."""
        pending = keys.csat_pending(contact_id)
        where = parse_id(survey_id)
        if where is None:
            await self.redis.srem(pending, survey_id)
            return None
        key = keys.csat_survey(*where)
        contact = await self.contacts.survivor(contact_id)
        for _ in range(MAX_ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key, keys.process(contact), keys.process_archive(contact))
                    raw = await pipe.get(key)
                    if raw is None:  # answered meanwhile, or gone with its TTL
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.srem(pending, survey_id)
                        await pipe.execute()
                        return None
                    survey = Survey.model_validate_json(raw)
                    if survey.due > now:
                        return survey.due
                    await pipe.watch(survey.chat_key)
                    pointer = await pipe.get(survey.chat_key)
                    target, index, current = await locate(pipe, contact, survey.process)
                    done = bp.unanswered(target, survey.task, survey.due) if target else None
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._store(pipe, contact, survey, done, index, current, bp.SYSTEM, survey.due)
                    self._forget(pipe, survey, raw, pointer)
                    await pipe.execute()
                except WatchError:
                    continue
            self.counts[bp.UNANSWERED] += 1
            log.info("csat.unanswered", contact_id=contact, process=survey.process)
            return None
        raise RuntimeError(f"expiring survey {survey_id} kept racing")

    # Shared writes ----------------------------------------------------------------------

    def _store(
        self,
        pipe: Pipeline,
        contact: ContactId,
        survey: Survey,
        transition: Transition | None,
        index: int | None,
        current: bp.Process | None,
        actor: str,
        at: datetime,
        rating: int | None = None,
    ) -> None:
        """The rated task where it lives (current, or in the archive), ``task.rated``,
        and the card if it shows that task. A task no longer found (trimmed) still gets
        its event: the answer is not lost."""
        if transition is None:
            log.warning("csat.task_not_found", process=survey.process, task=survey.task)
            said = str(rating) if rating is not None else bp.UNANSWERED
            event = bp.Event("task.rated", at, survey.process, survey.task, actor, {"rating": said})
            record_event(pipe, contact, event)
            return
        if index is None:
            self.processes.store_state(pipe, contact, transition.process)
        else:
            pipe.lset(
                keys.process_archive(contact), index, PROCESS.dump_json(transition.process).decode()
            )
        for event in transition.events:
            record_event(pipe, contact, event)
        shown = current is not None and current.number == survey.process
        if shown and current is not None and current.task.number == survey.task:
            self.queue(pipe, StaffCard(out_id=f"card:{uuid.uuid4().hex}", contact_id=contact))

    @staticmethod
    def _forget(pipe: Pipeline, survey: Survey, raw: bytes | str, pointer: object) -> None:
        """The survey is over: it leaves the contact's pending set, and the chat stops
        waiting for it (unless a newer survey was asked there since)."""
        pipe.delete(survey.key)
        pipe.srem(keys.csat_pending(survey.contact), survey.id)
        if pointer is not None and text(pointer) == text(raw):  # type: ignore[arg-type]
            pipe.delete(survey.chat_key)


def _answered_since(current: bp.Process | None, survey: Survey) -> bool:
    """An operator answered a newer task after the survey was asked: a bare "3" now is
    more likely an answer to them ("which floor?") than a rating — only a button press
    still rates."""
    if current is None:
        return False
    task = current.task
    if (current.number, task.number) == (survey.process, survey.task):
        return False
    return task.answered_at is not None and task.answered_at > survey.asked_at


def _answer(press: InboundCallback, contact_id: ContactId | None, said: str) -> CallbackAnswer:
    """The answer to a customer's press, through the bot they pressed it in."""
    sender: Sender = press.sender
    return CallbackAnswer(
        out_id=f"answer:{press.key}",
        contact_id=contact_id or ContactId("general"),
        callback_id=press.callback_id,
        text=said,
        destination=Destination(account=sender.account, chat_id=sender.chat_id),
    )
