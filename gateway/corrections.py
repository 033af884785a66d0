"""An operator takes back or corrects a reply: their edit in the topic edits the
customer's copy, and ``/delete`` removes it — where the messenger can (its adapter's
:class:`~adapters.base.Capabilities`), else a documented fallback:

- an edit the messenger cannot make (Viber, WhatsApp, or too late for Telegram and VK)
  goes to the customer as a new message, "✏️ Correction: …", quoting the original
  where quotes exist, and the topic says so;
- a deletion it cannot make is refused with the reason, in the topic;
- an operator's reaction to the customer's message becomes the same reaction at the
  customer's side, or a short reply with the emoji where bots cannot react
  (``delivery.reactions_as_text``; a reaction taken back then changes nothing).

Both are jobs in the customer's queue, behind the reply itself, so the customer's copy
is known by the time they run.
"""

from __future__ import annotations

import functools

import structlog

from adapters.base import Adapter
from gateway.bus import Entry
from gateway.config import STAFF_ACCOUNT
from gateway.errors import PermanentError
from gateway.jobs import CustomerDelete, CustomerEdit, CustomerReact, StaffNotice
from gateway.model import AccountId, ChatId, ContactId, Content, Destination, Kind, MessageId
from gateway.posting import Posting
from gateway.store import keys
from gateway.store.messages import MessageRef, Peer, peer
from gateway.store.writes import Writes

log = structlog.get_logger(__name__)


class Corrections(Posting):
    async def _copy_of(self, staff_chat: str, staff_message: MessageId) -> Peer | None:
        """The customer's copy of an operator's message (``None``: it never reached them)."""
        ref = MessageRef(AccountId(STAFF_ACCOUNT), ChatId(staff_chat), staff_message)
        found = await peer(self.redis, ref)
        return found if found is not None and found.ref.account != STAFF_ACCOUNT else None

    def _told(
        self, job: CustomerEdit | CustomerDelete, text: str, reply_to: MessageId
    ) -> StaffNotice:
        return StaffNotice(
            out_id=f"told:{job.out_id}",
            contact_id=ContactId(job.contact_id),
            text=text,
            reply_to=reply_to,
            line=self.lines.name_at(job.staff_chat),
        )

    async def _close(
        self, entry: Entry, job: CustomerEdit | CustomerDelete, notice: StaffNotice | None
    ) -> None:
        def also(pipe: Writes) -> None:
            if notice is not None:
                self.bus.add(pipe, keys.STAFF_OUT, notice.contact_id, notice.model_dump_json())

        await self._finish(entry, job.out_id, None, also=also)

    async def _correct(self, job: CustomerEdit, entry: Entry) -> None:
        copy = await self._copy_of(job.staff_chat, job.staff_message)
        adapter = self.adapters.get(copy.ref.account) if copy is not None else None
        if copy is None or adapter is None:
            said = "✏️ Not changed for the customer: that message did not reach them."
            await self._close(entry, job, self._told(job, said, job.staff_message))
            return
        dest = Destination(account=copy.ref.account, chat_id=copy.ref.chat_id)
        reason = f"{adapter.channel.value} cannot edit sent messages"
        if adapter.capabilities.edit:
            try:
                await self._call(
                    adapter, dest, adapter.edit_text, dest.chat_id, copy.ref.message_id, job.content
                )
            except PermanentError as exc:  # too old, or gone: the fallback below
                reason = exc.reason
            else:
                log.info("customer.edited", account=dest.account)
                await self._close(entry, job, None)
                return
        said = await self._resend(job, adapter, copy, reason)
        await self._close(entry, job, self._told(job, said, job.staff_message))

    async def _resend(self, job: CustomerEdit, adapter: Adapter, copy: Peer, reason: str) -> str:
        """The correction as a new message; what the topic is told."""
        said = f"✏️ Correction: {job.content.text or ''}"
        try:
            await self._say_under(adapter, copy, said, job.out_id)
        except PermanentError as exc:
            return f"⚠️ The correction was not delivered: {exc.reason}."
        log.info("customer.correction_sent", account=copy.ref.account, reason=reason)
        return f"✏️ {reason}, so the customer got the correction as a new message."

    async def _say_under(self, adapter: Adapter, copy: Peer, said: str, key: str) -> None:
        """Send ``said`` to the customer as a new message, quoting their copy ``copy``
        where the messenger quotes (the fallback of an edit or a reaction)."""
        reply_to = copy.ref.message_id if adapter.capabilities.reply_to else None
        dest = Destination(account=copy.ref.account, chat_id=copy.ref.chat_id, reply_to=reply_to)
        send = functools.partial(adapter.send, key=key)
        await self._call(adapter, dest, send, dest, Content(kind=Kind.TEXT, text=said))

    async def _unsend(self, job: CustomerDelete, entry: Entry) -> None:
        copy = await self._copy_of(job.staff_chat, job.staff_message)
        adapter = self.adapters.get(copy.ref.account) if copy is not None else None
        if copy is None or adapter is None:
            said = "🗑 Nothing to delete: that message did not reach the customer."
        elif not adapter.capabilities.delete:
            said = f"⚠️ Not deleted: {adapter.channel.value} cannot delete sent messages."
        else:
            dest = Destination(account=copy.ref.account, chat_id=copy.ref.chat_id)
            try:
                await self._call(adapter, dest, adapter.delete, dest.chat_id, copy.ref.message_id)
            except PermanentError as exc:
                said = f"⚠️ Not deleted: {exc.reason}."
            else:
                said = "🗑 Deleted for the customer."
                log.info("customer.deleted", account=dest.account)
        await self._close(entry, job, self._told(job, said, job.command))

    async def _react(self, job: CustomerReact, entry: Entry) -> None:
        copy = await self._copy_of(job.staff_chat, job.staff_message)
        adapter = self.adapters.get(copy.ref.account) if copy is not None else None
        if copy is not None and adapter is not None:
            dest = Destination(account=copy.ref.account, chat_id=copy.ref.chat_id)
            message = copy.ref.message_id
            try:
                if adapter.capabilities.reactions_out:
                    await self._call(adapter, dest, adapter.react, dest.chat_id, message, job.emoji)
                elif job.emoji and self.settings.delivery.reactions_as_text:
                    await self._say_under(adapter, copy, job.emoji, job.out_id)
            except PermanentError as exc:  # a reaction is not worth bothering staff with
                log.info("customer.reaction_failed", reason=exc.reason)
        await self._finish(entry, job.out_id, None)
