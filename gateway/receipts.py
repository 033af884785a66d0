"""Delivery receipts from customers' messengers → marks on the operator's message.

Viber (``delivered``/``seen``/``failed``) and WhatsApp (statuses) report what became of
a message the gateway sent. Delivered and seen become the staff bot's reaction on the
operator's message in the topic (👌, 👀: Telegram's reaction list has no check mark);
a failure becomes a "⚠️ Not delivered" note under it, with the buttons of
:mod:`gateway.staff.redeliver` while the send is kept. Marks only move forward: a late
"delivered" after "seen" is dropped, since platforms do not promise their order.

A receipt can overtake the send's own answer (WhatsApp says so), before delivery stored
which staff message the customer's copy belongs to. It is then *parked* on the
customer-side message, atomically unless the link appeared meanwhile, and delivery
applies it right after storing the link (:func:`parked_job`).
"""

from __future__ import annotations

import functools

import structlog
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from gateway.bus import Entry
from gateway.config import STAFF_ACCOUNT
from gateway.jobs import CustomerReact, StaffNotice, StaffReact
from gateway.model import ContactId, InboundReaction, InboundReceipt
from gateway.reactions import for_telegram
from gateway.staff import render
from gateway.staff.redeliver import Redeliver
from gateway.store import keys
from gateway.store.messages import MessageRef, mark_receipt, peer
from gateway.store.redis import Redis, text
from gateway.worker import Worker

log = structlog.get_logger(__name__)
RANK = {"delivered": 1, "seen": 2, "failed": 3}
STATUS = {rank: status for status, rank in RANK.items()}
MARKS = {"delivered": "👌", "seen": "👀"}
FAILED = "the messenger reported a failure"

# KEYS[1] the customer-side message's map entry. ARGV: rank, reason, ttl seconds.
# Returns 1 if the message is linked already (handle it now), else parks the receipt.
_PARK = """
if redis.call('HEXISTS', KEYS[1], 'message') == 1 then return 1 end
local parked = tonumber(redis.call('HGET', KEYS[1], 'parked') or '0')
if tonumber(ARGV[1]) > parked then
  redis.call('HSET', KEYS[1], 'parked', ARGV[1], 'parked_reason', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 0
"""


def mark_job(
    out_id: str,
    contact_id: ContactId,
    staff: MessageRef,
    line: str | None,
    status: str,
    reason: str | None,
) -> StaffReact | StaffNotice:
    """The staff-side job showing ``status`` on the operator's message ``staff`` — in
    the group it is in (``line``'s), wherever the conversation is now."""
    if status == "failed":
        return StaffNotice(
            out_id=out_id,
            contact_id=contact_id,
            text=render.not_delivered(reason or FAILED),
            reply_to=staff.message_id,
            line=line,
        )
    return StaffReact(
        out_id=out_id,
        contact_id=contact_id,
        message_id=staff.message_id,
        emoji=MARKS[status],
        chat=staff.chat_id,
    )


class Receipts(Worker):
    @functools.cached_property
    def redeliver(self) -> Redeliver:
        return Redeliver(self.redis, self.settings, self.contacts)

    @functools.cached_property
    def _park(self) -> AsyncScript:
        return self.redis.register_script(_PARK)

    async def handle(self, receipt: InboundReceipt, entry: Entry) -> None:
        sender = receipt.sender
        ref = MessageRef(sender.account, sender.chat_id, receipt.message_id)
        contact_id = await self.contacts.of_identity(sender.account, sender.user_id)
        rank = RANK[receipt.status]
        found = await peer(self.redis, ref)
        if found is None and contact_id is not None:
            ttl = int(keys.MESSAGE_MAP_TTL.total_seconds())
            key = keys.message(ref.account, ref.chat_id, ref.message_id)
            linked = await self._park(keys=[key], args=[rank, receipt.reason or "", ttl])
            if not linked:
                log.info("inbound.receipt_parked", status=receipt.status)
                await self.commit(entry)
                return
            found = await peer(self.redis, ref)
        if found is None or contact_id is None or rank <= found.receipt:
            log.info("inbound.receipt_skipped", status=receipt.status, known=found is not None)
            await self.commit(entry)
            return
        staff = found.ref
        kept = keys.undelivered(staff.chat_id, staff.message_id)
        line = self.lines.name_at(staff.chat_id)
        job = mark_job(
            f"receipt:{receipt.key}", contact_id, staff, line, receipt.status, receipt.reason
        )
        failure = None
        if receipt.status == "failed":
            failure = await self.redeliver.reported(kept, receipt.reason or FAILED)
        effects = self.effects(entry, *(failure.jobs if failure is not None else [job]))

        def build(pipe: Pipeline) -> None:
            mark_receipt(pipe, ref, rank)
            if failure is not None:  # the failure's buttons need the send a while longer
                failure.keep(pipe)
            elif receipt.status != "failed":
                pipe.delete(kept)  # delivered: it will not fail any more
            effects(pipe, None)

        await self.bus.commit(build)

    async def operator_reacted(self, reaction: InboundReaction, entry: Entry) -> None:
        """An operator reacted to a customer's message in a topic: the customer sees the
        reaction (or its fallback, :mod:`gateway.corrections`). Reactions on anything
        else — cards, notes, the operators' own replies — stay staff-side."""
        sender = reaction.sender
        staff = MessageRef(sender.account, sender.chat_id, reaction.message_id)
        found = await peer(self.redis, staff)
        own = keys.message(staff.account, staff.chat_id, staff.message_id)
        if (
            not self.is_operator(sender)
            or found is None
            or found.ref.account == STAFF_ACCOUNT
            or await self.redis.hexists(own, "author")  # an operator's reply
        ):
            log.info("staff.reaction_ignored", found=found is not None)
            await self.commit(entry)
            return
        contact_id = await self.contacts.of_identity(found.ref.account, found.ref.chat_id)
        job = None
        if contact_id is not None:
            job = CustomerReact(
                out_id=f"reaction:{reaction.key}",
                contact_id=await self.contacts.survivor(contact_id),
                staff_chat=sender.chat_id,
                staff_message=reaction.message_id,
                emoji=reaction.emoji,
            )
        await self.commit(entry, job)

    async def reaction(self, reaction: InboundReaction, entry: Entry) -> None:
        """The customer reacted to a message: the staff bot sets the same reaction on
        its copy in the topic (or says it in text when Telegram's list lacks it); taken
        back, the bot's reaction goes too. It changes nothing in the task."""
        sender = reaction.sender
        if str(sender.chat_id) != str(sender.user_id):  # in a group the bot was added to
            await self.commit(entry)
            return
        contact_id = await self.contacts.of_identity(sender.account, sender.user_id)
        found = await peer(
            self.redis, MessageRef(sender.account, sender.chat_id, reaction.message_id)
        )
        if contact_id is None:
            await self.commit(entry)
            return
        emoji = for_telegram(reaction.emoji) if reaction.emoji else ""
        copy = found.ref if found is not None and found.ref.account == STAFF_ACCOUNT else None
        job: StaffReact | StaffNotice
        if copy is not None and emoji is not None:
            job = StaffReact(
                out_id=f"reaction:{reaction.key}",
                contact_id=contact_id,
                message_id=copy.message_id,
                emoji=emoji,
                chat=copy.chat_id,
            )
        else:
            said = f"{reaction.emoji} (a reaction)" if reaction.emoji else "(a reaction taken back)"
            job = StaffNotice(
                out_id=f"reaction:{reaction.key}",
                contact_id=contact_id,
                text=said,
                reply_to=copy.message_id if copy is not None else None,
            )
        log.info("inbound.reaction", shown_as=type(job).__name__, removed=not reaction.emoji)
        await self.commit(entry, job)


async def parked_job(
    redis: Redis, customer: MessageRef, staff: MessageRef, line: str | None, contact_id: ContactId
) -> tuple[StaffReact | StaffNotice, int, str] | None:
    """A receipt that arrived before ``customer`` was linked: the job to queue now, its
    rank (the caller stores it with :func:`mark_receipt` and the job) and the failure's
    reason."""
    key = keys.message(customer.account, customer.chat_id, customer.message_id)
    rank, stored = await redis.hmget(key, ["parked", "parked_reason"])
    if rank is None:
        return None
    status = STATUS.get(int(rank))
    if status is None:
        return None
    out_id = f"receipt:parked:{customer.account}:{customer.message_id}"
    reason = text(stored or b"") or FAILED
    return mark_job(out_id, contact_id, staff, line, status, reason), int(rank), reason
