"""Contact commands in a topic, and merging: ``/contact``, ``/phone``, ``/email``,
``/merge``.

``/phone`` and ``/email`` run the dedup policy: with ``exact``, a phone or e-mail that
another contact has means one person, and the two are merged (the older contact
survives); with ``suggest`` or ``off`` staff are told and nothing merges.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog
from rapidfuzz import fuzz

from gateway.abuse import ban_line
from gateway.bus import Entry
from gateway.config import STAFF_ACCOUNT
from gateway.identity import InvalidIdentity, normalise_email, normalise_phone
from gateway.jobs import StaffCard, StaffCloseTopic, StaffNotice, _Job
from gateway.model import AccountId, Button, ChatId, ContactId, InboundMessage, MessageId, TopicId
from gateway.process import Merged
from gateway.staff import watchers
from gateway.staff.commands import Command, topic_link
from gateway.staff.tasks import local_time
from gateway.store import keys
from gateway.store.history import Record
from gateway.store.merge import Merger, MergeRefused
from gateway.store.messages import MessageRef, peer
from gateway.store.redis import text
from gateway.worker import Worker, Writer

log = structlog.get_logger(__name__)
COMMANDS = frozenset({"contact", "phone", "email", "merge", "unmerge", "via", "attachments"})
ATTACHMENTS_SHOWN = 30
FIND_LIMIT = 50
"""People a name search lists at most."""
FIND_MESSAGES = 50
"""Messages a search lists at most."""
FIND_PAGE = 10
FIND_KEPT = 3600
"""Seconds a search's page buttons keep working."""
Buttons = tuple[tuple[Button, ...], ...]
SUGGEST_AGAIN_AFTER = 30 * 86400
"""A suggestion nobody answered is made again after this long (seconds)."""
_TOPIC_LINK = re.compile(r"t\.me/c/(\d+)/(\d+)")


def _name_prefixes(name: str) -> set[str]:
    return {w[:3] for w in name.casefold().split() if len(w) >= 3 and w[:3].isalpha()}


class People(Worker):
    @property
    def merger(self) -> Merger:
        return Merger(self.redis, self.processes)

    async def command(
        self, command: Command, contact_id: ContactId, message: InboundMessage, entry: Entry
    ) -> None:
        """Run a contact command; its answer (and any merge) is committed with the ack."""
        key, at, operator = message.key, message.received_at, message.sender.user_id
        reply_to = message.message_id

        def notice(text: str) -> StaffNotice:
            return StaffNotice(
                out_id=f"notice:{key}", contact_id=contact_id, text=text, reply_to=reply_to
            )

        try:
            match command.name:
                case "contact":
                    answer = await self.card(contact_id)
                case "phone":
                    number = normalise_phone(command.args, self.settings.contacts.default_region)
                    answer = await self._save(
                        contact_id, self.contacts.add_phone, number, f"📞 {number} saved.", key, at
                    )
                case "email":
                    address = normalise_email(command.args)
                    answer = await self._save(
                        contact_id, self.contacts.add_email, address, f"✉️ {address} saved.", key, at
                    )
                case "unmerge":
                    await self._unmerge(contact_id, command.args.strip(), message, entry)
                    return
                case "attachments":
                    answer = await self.attachments(contact_id, command.args.strip().lower())
                case "via":
                    answer = await self._via(contact_id, command.args.strip())
                case _:
                    other = await self._target(command.args)
                    await self.merge(contact_id, other, at, operator, key, entry, reply_to)
                    return
        except (InvalidIdentity, MergeRefused) as exc:
            answer = f"⚠️ {exc}"
        await self.commit(entry, notice(answer) if answer else None)

    async def _unmerge(
        self, contact_id: ContactId, wanted: str, message: InboundMessage, entry: Entry
    ) -> None:
        """``/unmerge <account>``, ``/unmerge <channel>`` (telegram, vk…) or
        ``/unmerge <account:user id>``."""
        matching, identities = await self.identities_named(contact_id, wanted)
        if len(matching) != 1:
            listed = ", ".join(identities)
            why = "Which one?" if matching else "Split out which messenger?"
            raise MergeRefused(f"{why} /unmerge <account or account:user id>: {listed}")
        identity = matching[0]
        target = await self.merger.unmerge(
            contact_id, identity, message.received_at, message.sender.user_id
        )
        here, there = split_notices(
            contact_id, identity, target, message.key, reply_to=message.message_id
        )
        log.info("contact.unmerged", identity=identity, into=target)
        await self.commit(entry, here, there)

    async def identities_named(
        self, contact_id: ContactId, wanted: str
    ) -> tuple[list[str], list[str]]:
        """The contact's identities ``wanted`` names (``account:user_id``, an account or
        a messenger such as ``vk``), and all of them (for the error when not exactly one
        matches): the choice ``/unmerge`` and the API's unmerge make."""
        identities, _, _ = await self.contacts.details(contact_id)

        def kind(identity: str) -> str:
            channel = self.settings.channel(identity.partition(":")[0])
            return channel.kind if channel is not None else ""

        matching = [
            i for i in identities if wanted in (i, i.partition(":")[0]) or kind(i) == wanted
        ]
        return matching, identities

    async def _via(self, contact_id: ContactId, account: str) -> str:
        identities, _, _ = await self.contacts.details(contact_id)
        accounts = sorted({i.partition(":")[0] for i in identities})
        channel = self.settings.channel(account)
        if not account or channel is None or account not in accounts:
            return f"⚠️ Replies can go via: {', '.join(accounts)}. /via <account>"
        await self.contacts.route_via(contact_id, account, channel.kind)
        return f"↪️ Replies now go via {account} (until the customer writes elsewhere)."

    async def save_phone(self, contact_id: ContactId, number: str, key: str, at: datetime) -> str:
        """Staff confirmed a phone the customer wrote: save it, then the dedup policy."""
        saved = f"📞 {number} saved."
        try:
            add = self.contacts.add_phone
            return await self._save(contact_id, add, number, saved, key, at) or "🔗 Merged."
        except MergeRefused as exc:
            return str(exc)

    async def _save(
        self,
        contact_id: ContactId,
        add: Callable[[ContactId, str], Awaitable[ContactId | None]],
        value: str,
        saved: str,
        key: str,
        at: datetime,
    ) -> str:
        """Store a phone or e-mail; if another contact has it, the dedup policy decides
        (``""`` when they were merged: the merge's notices say so)."""
        owner = await add(contact_id, value)
        if owner is None:
            return saved
        return await self._same_person(contact_id, owner, value, key, at)

    async def _same_person(
        self, contact_id: ContactId, owner: ContactId, value: str, key: str, at: datetime
    ) -> str:
        """``value`` belongs to ``owner`` too: the dedup policy decides."""
        name = (await self.contacts.get(owner)).get("display_name", "?")
        if await self.contacts.distinct(contact_id, owner):
            return f"{value} saved; contact #{owner} {name} has it too (marked as another person)."
        if self.settings.dedup.auto_merge == "suggest":
            await self.commit_suggestion(contact_id, owner, value, key)
            return f"📎 {value} saved; contact #{owner} {name} has it too: see the suggestion."
        if self.settings.dedup.auto_merge != "exact":
            return f"📎 {value} saved; contact #{owner} {name} has it too."
        survivor, absorbed = sorted((contact_id, owner), key=int)
        await self.merge(survivor, absorbed, at, "dedup", f"dedup:{key}")
        return ""

    async def suggestions(
        self, contact_id: ContactId, owner: ContactId, value: str, key: str
    ) -> list[StaffNotice]:
        """[Merge] [Not the same] in both topics — once per pair of contacts. ``value``
        is the phone or e-mail they share (empty: their names are alike)."""
        pair = sorted((contact_id, owner), key=int)
        if await self.contacts.distinct(contact_id, owner) or not await self.redis.set(
            keys.suggested(*pair), 1, nx=True, ex=SUGGEST_AGAIN_AFTER
        ):
            return []
        names = {c: (await self.contacts.get(c)).get("display_name", "?") for c in pair}
        notices = []
        for here, there in ((contact_id, owner), (owner, contact_id)):
            notices.append(
                StaffNotice(
                    out_id=f"suggest:{key}:{here}:{there}",
                    contact_id=here,
                    text=(
                        f"🧩 {value} also belongs to contact #{there} {names[there]}. "
                        if value
                        else f"🧩 Contact #{there} {names[there]} has a similar name. "
                    )
                    + "The same person?",
                    buttons=(
                        (
                            Button(text="Merge", data=f"c:merge:{there}"),
                            Button(text="Not the same", data=f"c:distinct:{there}"),
                        ),
                    ),
                )
            )
        return notices

    async def similar_names(self, contact_id: ContactId, name: str) -> list[ContactId]:
        """Index a new contact's name and return existing contacts whose names are
        close (best first). Only ever used to suggest: a name is no proof."""
        prefixes = _name_prefixes(name)
        if not prefixes:
            return []
        candidates: set[str] = set()
        for prefix in prefixes:
            candidates |= {text(c) for c in await self.redis.smembers(keys.name_bucket(prefix))}
            await self.redis.sadd(keys.name_bucket(prefix), contact_id)
        candidates.discard(contact_id)
        threshold = self.settings.dedup.name_threshold
        scored = []
        for cid in candidates:
            other = (await self.contacts.get(ContactId(cid))).get("display_name", "")
            score = fuzz.token_sort_ratio(name.casefold(), other.casefold())
            if score >= threshold:
                scored.append((score, ContactId(cid)))
        return [cid for _, cid in sorted(scored, reverse=True)[:3]]

    async def commit_suggestion(
        self, contact_id: ContactId, owner: ContactId, value: str, key: str
    ) -> None:
        notices = await self.suggestions(contact_id, owner, value, key)
        if notices:
            await self.commit(None, *notices)

    async def _target(self, args: str) -> ContactId:
        """``/merge 17``, ``/merge #17`` or ``/merge <link to its topic>``."""
        wanted = args.strip().lstrip("#")
        link = _TOPIC_LINK.search(wanted)
        if link is not None:
            chat = f"-100{link.group(1)}"
            topics = self.lines.at(chat) if self.settings.line_at(chat) else None
            found = await topics.contact_of(TopicId(int(link.group(2)))) if topics else None
            if found is None:
                raise MergeRefused("That topic belongs to no contact.")
            return found
        if not wanted.isdigit():
            raise MergeRefused("Whom to merge? /merge <contact id> or a link to their topic.")
        if not await self.contacts.exists(wanted):
            raise MergeRefused(f"There is no contact #{wanted}.")
        return ContactId(wanted)

    async def merge(
        self,
        survivor: ContactId,
        absorbed: ContactId,
        at: datetime,
        actor: str,
        key: str,
        entry: Entry | None = None,
        reply_to: MessageId | None = None,
        also: tuple[_Job, ...] = (),
    ) -> Merged:
        """Merge and, in the same transaction, tell both topics (closing the absorbed
        one), refresh the survivor's card and acknowledge ``entry``."""
        kept = await self.contacts.get(survivor)
        gone = await self.contacts.get(absorbed)
        kept_link = await self.lines.link(survivor)
        where = f": {kept_link}" if kept_link else ""
        farewell = StaffNotice(
            out_id=f"merged-away:{key}",
            contact_id=absorbed,
            text=f"🔗 Merged into contact #{survivor} {kept.get('display_name', '')}{where}\n"
            "Everything from now on is there; this topic is closed.",
        )
        welcome = StaffNotice(
            out_id=f"merged-in:{key}",
            contact_id=survivor,
            text=f"🔗 Contact #{absorbed} {gone.get('display_name', '')} "
            f"({gone.get('channel', '?')} · {gone.get('account', '?')}) is merged into this "
            "one: its messengers, phones, e-mails and tasks are here now.",
            reply_to=reply_to,
        )
        jobs = [
            farewell,
            StaffCloseTopic(out_id=f"close:{key}", contact_id=absorbed),
            welcome,
            StaffCard(out_id=f"card:{key}", contact_id=survivor),
            *also,
        ]

        queued = self.effects(entry, *jobs)

        def effects(pipe: Writer, _: Merged) -> None:
            queued(pipe, None)

        result = await self.merger.merge(survivor, absorbed, at, actor, effects)
        await watchers.carry(self.redis, survivor, absorbed)
        if gone.get("banned_at") and not kept.get("banned_at"):  # one person: one ban
            fields = ("banned_at", "banned_by", "ban_reason")
            await self.redis.hset(
                keys.contact(survivor), mapping={k: gone[k] for k in fields if k in gone}
            )
        log.info("contact.merged", survivor=survivor, absorbed=absorbed, actor=actor)
        return result

    async def find(self, query: str, page: int = 0) -> tuple[str, Buttons]:
        """People by phone (any written form), e-mail, name or username, then messages
        containing the text; ``FIND_PAGE`` lines a page, with [◀] [▶] buttons."""
        wanted = query.strip()
        if len(wanted) < 2:
            return "/find <name, @username, phone, e-mail or words from a message>", ()
        lines = await self._people_lines(wanted) + await self._message_lines(wanted)
        if not lines:
            return f"🔎 Nothing found for “{wanted}”.", ()
        pages = (len(lines) + FIND_PAGE - 1) // FIND_PAGE
        page = max(0, min(page, pages - 1))
        shown = lines[page * FIND_PAGE : (page + 1) * FIND_PAGE]
        head = f"🔎 “{wanted}”: {len(lines)} found" + (
            f", page {page + 1} of {pages}" if pages > 1 else ""
        )
        buttons: Buttons = ()
        if pages > 1:
            query_id = hashlib.sha1(wanted.encode()).hexdigest()[:12]  # noqa: S324 - an id
            await self.redis.set(keys.find_query(query_id), wanted, ex=FIND_KEPT)
            row = []
            if page > 0:
                row.append(Button(text="◀", data=f"f:{query_id}:{page - 1}"))
            if page < pages - 1:
                row.append(Button(text="▶", data=f"f:{query_id}:{page + 1}"))
            buttons = (tuple(row),)
        return "\n".join([head, *shown]), buttons

    async def named(self, wanted: str) -> list[str]:
        """The contacts ``wanted`` names, as /find reads it: a phone (any written form),
        else an e-mail, else a name or @username."""
        exact = None
        with contextlib.suppress(InvalidIdentity):
            exact = keys.phone(normalise_phone(wanted, self.settings.contacts.default_region))
        if exact is None and "@" in wanted.strip("@"):
            with contextlib.suppress(InvalidIdentity):
                exact = keys.email(normalise_email(wanted))
        if exact is not None:
            owner = await self.redis.get(exact)
            return [text(owner)] if owner is not None else []
        return await self.by_name(wanted.lstrip("@").casefold())

    async def _people_lines(self, wanted: str) -> list[str]:
        found = await self.named(wanted)
        people = list(dict.fromkeys([await self.contacts.survivor(ContactId(c)) for c in found]))
        lines = []
        for contact_id in people:
            data = await self.contacts.get(contact_id)
            name = data.get("display_name", "?")
            handle = f" @{data['username']}" if data.get("username") else ""
            topic = await self.lines.link(contact_id)
            link = f" — {topic}" if topic else ""
            lines.append(f"👤 #{contact_id} {name}{handle}{link}")
        return lines

    async def _message_lines(self, wanted: str) -> list[str]:
        lines = []
        for contact_id, record in await self.history.search(wanted, FIND_MESSAGES):
            person = await self.contacts.survivor(ContactId(contact_id))
            name = (await self.contacts.get(person)).get("display_name", "?")
            body = record.text if len(record.text) <= 80 else record.text[:79] + "…"
            arrow = "←" if record.direction == "in" else "→"
            when = local_time(record.at, self.settings.zone)
            line = f"💬 {when} #{person} {name} {arrow} {body}"
            copy = await self._staff_link(person, record)
            if copy is not None:
                line += f" — {copy}"
            lines.append(line)
        return lines

    async def by_name(self, needle: str) -> list[str]:
        """Contacts whose name or username contains ``needle`` (a scan: fine for an
        operator's query over a hundred thousand contacts, not for a hot path)."""
        found: list[str] = []
        prefix = keys.contact("")
        async for key in self.redis.scan_iter(match=f"{prefix}*", count=1000):
            name = text(key)
            cid = name.removeprefix(prefix)
            if not cid.isdigit():
                continue
            # A merged contact's names still find the person (shown as the survivor).
            display, username = await self.redis.hmget(name, ["display_name", "username"])
            haystack = f"{text(display or b'')} {text(username or b'')}".casefold()
            if needle in haystack:
                found.append(cid)
                if len(found) >= FIND_LIMIT:
                    break
        return sorted(found, key=int)

    async def attachments(self, contact_id: ContactId, kind: str) -> str:
        """The person's files and photos (``/attachments photo`` filters by kind), newest
        first, each with a link to its message in the topic."""
        records = await self.history.of_person(contact_id, limit=1000)
        files = [r for r in records if r.file_id and (not kind or r.kind == kind)]
        if not files:
            kinds = sorted({r.kind for r in records if r.file_id})
            hint = f" Kinds here: {', '.join(kinds)}." if kinds and kind else ""
            return f"📎 No {kind or 'files'} yet.{hint}"
        lines = [f"📎 {len(files)} {kind or 'files'}, newest first:"]
        for record in reversed(files[-ATTACHMENTS_SHOWN:]):
            arrow = "←" if record.direction == "in" else "→"
            line = f"• {local_time(record.at, self.settings.zone)} {arrow} {record.kind}"
            line += f" ({record.account})"
            staff_copy = await self._staff_link(contact_id, record)
            if staff_copy is not None:
                line += f" {staff_copy}"
            lines.append(line)
        return "\n".join(lines)

    async def _staff_link(self, contact_id: ContactId, record: Record) -> str | None:
        """A link to the message in the person's topic a history record is about (in
        their current line's group; a copy in another line's has none)."""
        line, topic = await self.lines.topic(contact_id)
        if topic is None:
            return None
        chat, message = str(line.chat_id), record.message_id
        if record.direction == "out" and record.chat != chat:
            return None
        if record.direction == "in":
            ref = MessageRef(
                AccountId(record.account), ChatId(record.chat), MessageId(record.message_id)
            )
            found = await peer(self.redis, ref)
            if found is None or found.ref.account != STAFF_ACCOUNT or found.ref.chat_id != chat:
                return None
            message = found.ref.message_id
        return f"{topic_link(chat, topic)}/{message}"

    async def card(self, contact_id: ContactId) -> str:
        data = await self.contacts.get(contact_id)
        identities, phones, emails = await self.contacts.details(contact_id)
        lines = [
            f"👤 Contact #{contact_id}: {data.get('display_name', '?')}"
            + (f" (@{data['username']})" if data.get("username") else ""),
            f"Kind: {data.get('kind', 'client')}",
            "Messengers: " + (", ".join(identities) or "—"),
            "Phones: " + (", ".join(phones) or "—"),
            "E-mails: " + (", ".join(emails) or "—"),
            f"Replies go to {data.get('reply_channel', '?')} · {data.get('reply_account', '?')}",
        ]
        banned = ban_line(data)
        return "\n".join([*lines, banned] if banned else lines)


def split_notices(
    contact_id: ContactId,
    identity: str,
    target: ContactId,
    key: str,
    *,
    by: str = "",
    reply_to: MessageId | None = None,
) -> tuple[StaffNotice, StaffNotice]:
    """What both topics say when ``identity`` is split out of ``contact_id`` into
    ``target`` (``by``: " (by api:crm)" when not an operator in the topic)."""
    here = StaffNotice(
        out_id=f"notice:{key}",
        contact_id=contact_id,
        text=f"↩️ {identity} is split out into contact #{target}, a separate person now{by}. "
        "Its earlier tasks stay here.",
        reply_to=reply_to,
    )
    there = StaffNotice(
        out_id=f"split:{key}",
        contact_id=target,
        text=f"↩️ Split out of contact #{contact_id}{by}: {identity} is a separate person.",
    )
    return here, there
