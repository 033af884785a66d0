"""Customers' messages into their staff topics: one by one, or — when the group's
budget makes them wait — texts combined and media grouped into albums (see
:mod:`gateway.coalesce`); edits of the copies; files carried between bots."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable

import structlog

from adapters.base import Adapter, StaffAdapter, Upload
from gateway import coalesce
from gateway.bus import Entry
from gateway.config import STAFF_ACCOUNT
from gateway.errors import PermanentError
from gateway.jobs import StaffEdit, StaffGeneral, StaffPost
from gateway.model import (
    AccountId,
    ContactId,
    Content,
    Destination,
    InboundMessage,
    Kind,
    Sent,
)
from gateway.outbox import Outbox
from gateway.staff import render
from gateway.staff.commands import topic_link
from gateway.staff.watchers import notice_text
from gateway.store import keys
from gateway.store.batch import Reads, read
from gateway.store.messages import MessageRef, link, peer
from gateway.store.redis import text
from gateway.store.writes import Writes

log = structlog.get_logger(__name__)


class Posting(Outbox):
    async def _post(self, job: StaffPost, entry: Entry) -> None:
        message = job.message
        # One group-committed read: sent already? How many messengers does the person
        # use? Who watches them? Their line (with several) and their topic there?
        reads = Reads()
        reads.exists(keys.done(job.out_id))
        reads.scard(keys.contact_identities(job.contact_id))
        reads.smembers(keys.watchers(job.contact_id))
        self.lines.ask(reads, job.contact_id)
        done, identities, watchers, *where = await read(self.redis, reads)
        line, known = self.lines.answer(where)
        self.address(line.chat_id)  # (Delivery left a post's addressing to this read)
        if done:
            log.info("delivery.duplicate_skipped", job=job.out_id)
            await self.bus.ack_now(entry)
            return
        origin = _origin(message)
        reply_to = None
        if message.reply_to is not None:
            quoted = await peer(
                self.redis, MessageRef(origin.account, origin.chat_id, message.reply_to)
            )
            if quoted is not None and quoted.ref.account == STAFF_ACCOUNT:
                reply_to = quoted.ref.message_id
        content, upload = await self._transfer(message.content, self.staff)
        if message.reply_to is not None and reply_to is None and message.quoted:
            # The quoted message has no copy here (a greeting, an old one): quote it inline.
            content = content.prefixed(render.quoted(message.quoted))
        run = await self._burst(job, entry, content, upload)
        messages = [message, *(post.message for _, post in run)]
        if content.text and identities > 1:
            # One topic, several messengers: say which one this came from.
            mark = render.badge(message.sender.channel, message.sender.account)
            content = content.prefixed(mark)
        album: list[tuple[Content, Upload | None]] = [(content, upload)]
        if run and coalesce.album_kind(message) is not None:
            album += [await self._transfer(post.message.content, self.staff) for _, post in run]
            log.info("staff.album", items=len(album))
        elif run:
            content = coalesce.combined(messages, self.settings.zone)
            log.info("staff.coalesced", messages=len(messages))
        single = len(album) == 1

        def send(bot: StaffAdapter, dest: Destination) -> Awaitable[Sent]:
            return bot.send(dest, content, upload) if single else bot.send_album(dest, album)

        bots = self.senders(content, upload)
        if not single and any(u is None for _, u in album):
            bots = [self.staff]  # some item is one of the staff bot's own file ids
        channel = self.settings.channel(message.sender.account)
        topic, sent, bot = await self._via_pool(
            job.contact_id,
            send,
            bots,
            reply_to=reply_to,
            first=message,
            priority=channel.priority if channel else 0,
            topic=known,
        )
        via = "" if bot is self.staff else bot.file_scope
        ids = sent.message_ids

        def links(pipe: Writes) -> None:
            for n, each in enumerate(messages):
                # An album item maps to its own message; combined texts share one.
                staff_id = ids[min(n, len(ids) - 1)] if not single else ids[0]
                copy = MessageRef(AccountId(STAFF_ACCOUNT), self.staff_chat, staff_id)
                shared = bool(run) and single
                link(pipe, _origin(each), copy, each.content.text, via=via, shared=shared)
            for later, post in run:  # handled here: done, acknowledged, never sent again
                pipe.set(keys.done(post.out_id), json.dumps(ids), ex=self.done_ttl)
                self.bus.ack(pipe, later)
            where = f"{topic_link(self.staff_chat, topic)}/{ids[0]}"
            for watcher in sorted(text(w) for w in watchers):
                told = StaffGeneral(
                    out_id=f"watch:{watcher}:{job.out_id}",
                    contact_id=ContactId(f"watch:{watcher}"),  # their own partition
                    text=watched(message, content.text or f"[{message.content.kind}]", where),
                    chat=watcher,
                )
                self.bus.add(pipe, keys.STAFF_OUT, told.contact_id, told.model_dump_json())

        await self._finish(entry, job.out_id, sent, also=links)
        for each in messages:
            self._count("staff", each.sender.channel, STAFF_ACCOUNT, "sent")
            self.metrics.latency.labels("to_staff").observe(
                max(0.0, time.time() - each.received_at.timestamp())
            )

    async def _burst(
        self, job: StaffPost, entry: Entry, content: Content, upload: Upload | None
    ) -> list[tuple[Entry, StaffPost]]:
        """The queued posts to send along with ``job``'s (texts combined, or media as an
        album): only when the staff group's budget makes it wait (else each goes as it
        is, mapped one to one)."""
        message = job.message
        album = coalesce.album_kind(message) is not None
        if not self.settings.delivery.coalesce or not (album or coalesce.mergeable(message)):
            return []
        if content.kind is not message.content.kind:
            return []  # the file could not be fetched: a placeholder goes alone
        dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
        options = [bot.buckets(dest) for bot in self.senders(content, upload)]
        if not await self.limiter.wait_for_any(options):
            return []
        queued = await coalesce.ahead(self.redis, entry, job.contact_id)
        run = coalesce.album(job, queued) if album else coalesce.followers(job, queued)
        return [(item.entry, item.job) for item in run if isinstance(item.job, StaffPost)]

    async def _edit(self, job: StaffEdit, entry: Entry) -> None:
        message = job.message
        origin = _origin(message)
        text = message.content.text or ""
        copy = await peer(self.redis, origin)
        if copy is not None and copy.text == text:
            # Telegram sends edited_message for changes a bot cannot see (e.g. a link
            # preview appearing): nothing visible changed, so staff are not bothered.
            await self._finish(entry, job.out_id, None)
            return
        edited = message.content.model_copy(update={"text": render.edited_text(text)})
        # Only the bot that posted a copy may edit it; a coalesced copy holds others too.
        author = (
            next((b for b in self.relays if b.file_scope == copy.via), self.staff) if copy else None
        )
        if copy is not None and author is not None and not copy.shared:
            # In the group it was posted in (the conversation may have moved lines since).
            dest = Destination(account=self.staff.account, chat_id=copy.ref.chat_id)
            try:
                await self._call(
                    author,
                    dest,
                    author.edit_text,
                    dest.chat_id,
                    copy.ref.message_id,
                    edited,
                )
                await self._finish(entry, job.out_id, None, (origin, copy.ref, text))
                return
            except PermanentError as exc:
                log.info("staff.edit_fallback", reason=exc.reason)
        # The copy is unknown or cannot be edited: post the new version as a reply.
        notice = Content(kind=Kind.TEXT, text=render.edited_text(text))
        reply_to = copy.ref.message_id if copy is not None else None
        _, sent = await self._to_topic(job.contact_id, notice, reply_to=reply_to)
        staff_ref = MessageRef(AccountId(STAFF_ACCOUNT), self.staff_chat, sent.message_ids[0])
        await self._finish(entry, job.out_id, sent, (origin, staff_ref, text))

    @staticmethod
    def _fits(content: Content, target: Adapter) -> None:
        """Refuse, before fetching it, a file bigger than the target messenger takes."""
        size = content.attachment.size if content.attachment is not None else None
        limit = target.capabilities.max_file_mb
        if size is not None and size > limit * 1024 * 1024:
            raise PermanentError(
                target.channel.value,
                "file too big",
                reason=f"the file is {size / 2**20:.1f} MB and {target.channel.value} "
                f"takes at most {limit:g} MB",
            )

    async def _transfer(self, content: Content, target: Adapter) -> tuple[Content, Upload | None]:
        """Bytes for the target when it cannot reuse the source's file id (another bot)."""
        attachment = content.attachment
        if attachment is None:
            return content, None
        source = self.adapters.get(attachment.account) or (
            self.staff if attachment.account == STAFF_ACCOUNT else None
        )
        if source is not None and source.file_scope == target.file_scope:
            return content, None
        try:
            if source is None:
                raise PermanentError(
                    "gateway", "no adapter", reason=f"account {attachment.account} is gone"
                )
            upload = await source.download(attachment)
        except PermanentError as exc:
            placeholder = render.attachment_unavailable(content.kind.value, exc.reason)
            text = f"{placeholder}\n{content.text}" if content.text else placeholder
            return Content(kind=Kind.TEXT, text=text), None
        if target.media_by_url:  # the messenger downloads it from us
            url = await self.media.publish(upload.data, upload.file_name)
            upload = Upload(data=upload.data, file_name=upload.file_name, url=url)
        return content, upload


def watched(message: InboundMessage, body: str, link: str) -> str:
    """A watcher's notice of the customer's message (see :mod:`gateway.staff.watchers`)."""
    sender = message.sender
    where = f"{sender.channel.value} · {sender.account}"
    return notice_text(sender.display_name, where, body, link)


def _origin(message: InboundMessage) -> MessageRef:
    return MessageRef(message.sender.account, message.sender.chat_id, message.message_id)
