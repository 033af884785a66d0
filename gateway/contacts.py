"""Contacts: one person across messengers.

Every (channel account, platform user id) identity maps to exactly one contact. An
unknown sender creates one — unless it brings a phone another contact already has and
the dedup policy is ``exact``: then the identity joins that contact (the same person
writing from another messenger). The get-or-create is one Lua script, so two first
messages of one person handled at once by two workers still give one contact.

Phones (E.164) and e-mails (lower-case) are indexed: ``phone:+7916…`` → contact. A
contact merged into another keeps its record with ``merged_into``; every identity,
phone and e-mail it had points to the survivor (see :mod:`gateway.store.merge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.model import (
    AccountId,
    Channel,
    ChatId,
    Contact,
    ContactId,
    Destination,
    MessageId,
    Sender,
)
from gateway.store import keys
from gateway.store.batch import batched
from gateway.store.redis import Redis, text

# KEYS[1] identity key, KEYS[2] contact sequence, KEYS[3] the phone's index key (or
# the identity key again when there is no phone). ARGV: 1 key prefix, 2 seen_at,
# 3 channel, 4 account, 5 user_id, 6 display_name, 7 username, 8 chat, 9 message id
# ('' for an edit), 10 kind for a new contact, 11 phone ('' none), 12 may an identity
# join the phone's contact ('1'). Contact keys are built here because the id is only
# known here (a single Redis or a Sentinel master; not a Cluster).
_RESOLVE = """
local p = ARGV[1]
local cid = redis.call('GET', KEYS[1])
local created, joined, other = 0, 0, false
local phone = ARGV[11]
if not cid then
  local owner = phone ~= '' and redis.call('GET', KEYS[3]) or false
  if owner and ARGV[12] == '1' then
    cid, joined = owner, 1
  else
    cid = tostring(redis.call('INCR', KEYS[2]))
    created = 1
    redis.call('HSET', p .. 'contact:' .. cid, 'first_seen', ARGV[2], 'channel', ARGV[3],
               'account', ARGV[4], 'user_id', ARGV[5], 'kind', ARGV[10])
  end
  redis.call('SET', KEYS[1], cid)
  redis.call('SADD', p .. 'contact-ids:' .. cid, ARGV[4] .. ':' .. ARGV[5])
end
if phone ~= '' then
  local owner = redis.call('GET', KEYS[3])
  if not owner then
    redis.call('SET', KEYS[3], cid)
  elseif owner ~= cid then
    other = owner
  end
  redis.call('SADD', p .. 'contact-phones:' .. cid, phone)
end
local key = p .. 'contact:' .. cid
redis.call('HSET', key, 'display_name', ARGV[6], 'username', ARGV[7], 'last_seen', ARGV[2],
           'reply_account', ARGV[4], 'reply_chat', ARGV[8], 'reply_channel', ARGV[3],
           'chat@' .. ARGV[4] .. ':' .. ARGV[5], ARGV[8])
if ARGV[9] ~= '' then
  redis.call('HSET', key, 'last_message', ARGV[9], 'seen@' .. ARGV[4] .. ':' .. ARGV[5], ARGV[2])
end
return {cid, created, joined, other, redis.call('HGET', key, 'first_seen'),
        redis.call('HGET', key, 'channel'), redis.call('HGET', key, 'account'),
        redis.call('HGET', key, 'banned_at')}
"""
# KEYS[1] the index key (phone:… or email:…), KEYS[2] the contact's set of them.
# ARGV[1] contact id, ARGV[2] the value. Returns the other contact that already has
# it (nothing is indexed then, but the contact keeps it in its own set), or false.
_ADD = """
local owner = redis.call('GET', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[2])
if not owner then
  redis.call('SET', KEYS[1], ARGV[1])
  return false
end
if owner == ARGV[1] then return false end
return owner
"""


@dataclass(frozen=True, slots=True)
class Resolved:
    contact: Contact
    created: bool
    """A new contact was created for this sender."""
    joined: bool
    """A new identity joined an existing contact (the same phone)."""
    same_phone_as: ContactId | None = None
    """Another contact already has the sender's phone (the dedup policy decides)."""
    banned_at: str | None = None
    """The person is banned (``/ban``) since then (ISO time)."""


def chats_of(data: dict[str, str]) -> dict[str, str]:
    """The chats to write to the person in, from their contact hash (:meth:`Contacts.get`):
    ``"account:user" → chat``, one per identity."""
    return {k.removeprefix("chat@"): v for k, v in data.items() if k.startswith("chat@")}


class Contacts:
    def __init__(self, redis: Redis, *, join_by_phone: bool = True) -> None:
        """``join_by_phone``: a new identity with a known phone joins its contact
        (the ``exact`` dedup policy)."""
        self.redis = redis
        self.join_by_phone = join_by_phone
        self._resolve = redis.register_script(_RESOLVE)
        self._add = redis.register_script(_ADD)

    async def resolve(
        self,
        sender: Sender,
        seen_at: datetime,
        message_id: MessageId | None = None,
        *,
        kind: str = "client",
        phone: str | None = None,
    ) -> Resolved:
        """The sender's contact (created on first contact).

        The latest profile (name, username), the chat to reply into and (when given)
        the customer's latest message there are refreshed. ``phone`` (E.164) is the
        sender's own, when the platform tells it.
        """
        identity = keys.identity(sender.account, sender.user_id)
        cid, created, joined, other, first_seen, channel, account, banned = await batched(
            self._resolve,
            keys=[identity, keys.CONTACT_SEQ, keys.phone(phone) if phone else identity],
            args=[
                f"{keys.PREFIX}:",
                seen_at.astimezone(UTC).isoformat(),
                sender.channel.value,
                sender.account,
                sender.user_id,
                sender.display_name,
                sender.username or "",
                sender.chat_id,
                message_id or "",
                kind,
                phone or "",
                "1" if self.join_by_phone else "0",
            ],
        )
        contact = Contact(
            id=ContactId(text(cid)),
            display_name=sender.display_name,
            username=sender.username,
            channel=Channel(text(channel)),
            account=AccountId(text(account)),
            first_seen=datetime.fromisoformat(text(first_seen)),
        )
        return Resolved(
            contact,
            bool(created),
            bool(joined),
            ContactId(text(other)) if other else None,
            text(banned) if banned else None,
        )

    async def lead(self, sender: Sender, at: datetime, phone: str | None) -> ContactId:
        """The contact of someone known from outside the messengers (a call, a form, an
        operator's ``/new``), made a lead if new; with no route to reply through until
        they write or a messenger is chosen for them."""
        resolved = await self.resolve(sender, at, kind="lead", phone=phone)
        await self.redis.hdel(
            keys.contact(resolved.contact.id), "reply_account", "reply_chat", "reply_channel"
        )
        return resolved.contact.id

    async def add_phone(self, contact_id: ContactId, number: str) -> ContactId | None:
        """Give the contact a phone (E.164); returns another contact that has it."""
        owner = await self._add(
            keys=[keys.phone(number), keys.contact_phones(contact_id)], args=[contact_id, number]
        )
        return ContactId(text(owner)) if owner else None

    async def add_email(self, contact_id: ContactId, address: str) -> ContactId | None:
        """Give the contact an e-mail (normalised); returns another contact that has it."""
        owner = await self._add(
            keys=[keys.email(address), keys.contact_emails(contact_id)], args=[contact_id, address]
        )
        return ContactId(text(owner)) if owner else None

    async def distinct(self, one: ContactId, other: ContactId) -> bool:
        """Staff said these are different people (dedup leaves them apart)."""
        return bool(await self.redis.sismember(keys.contact_distinct(one), other))

    async def get(self, contact_id: ContactId) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.contact(contact_id))
        return {text(k): text(v) for k, v in raw.items()}

    async def exists(self, contact_id: str) -> bool:
        return bool(await self.redis.exists(keys.contact(contact_id)))

    async def of_identity(self, account: str, user_id: str) -> ContactId | None:
        """The contact that now stands for an identity (``None``: never seen)."""
        found = await self.redis.get(keys.identity(account, user_id))
        return await self.survivor(ContactId(text(found))) if found is not None else None

    async def survivor(self, contact_id: ContactId) -> ContactId:
        """The contact that now stands for ``contact_id`` (itself, unless merged)."""
        seen = {contact_id}
        while (
            merged := await self.redis.hget(keys.contact(contact_id), "merged_into")
        ) is not None:
            contact_id = ContactId(text(merged))
            if contact_id in seen:  # pragma: no cover - merges never form a cycle
                break
            seen.add(contact_id)
        return contact_id

    async def details(self, contact_id: ContactId) -> tuple[list[str], list[str], list[str]]:
        """The contact's identities (``account:user_id``), phones and e-mails, sorted."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.contact_identities(contact_id))
            pipe.smembers(keys.contact_phones(contact_id))
            pipe.smembers(keys.contact_emails(contact_id))
            found = await pipe.execute()
        return tuple(sorted(text(v) for v in values) for values in found)  # type: ignore[return-value]

    async def last_message(self, contact_id: ContactId) -> tuple[Destination, MessageId] | None:
        """The customer's latest message and its chat (what a read receipt marks)."""
        account, chat, message = await self.redis.hmget(
            keys.contact(contact_id), ["reply_account", "reply_chat", "last_message"]
        )
        if account is None or chat is None or message is None:
            return None
        destination = Destination(account=AccountId(text(account)), chat_id=ChatId(text(chat)))
        return destination, MessageId(text(message))

    async def route_via(self, contact_id: ContactId, account: str, channel: str) -> ChatId | None:
        """Send replies through ``account`` from now on (until the person writes from
        elsewhere); ``None`` if the person has no identity there."""
        data = await self.get(contact_id)
        chat = next((v for k, v in data.items() if k.startswith(f"chat@{account}:")), None)
        if chat is None:
            return None
        await self.redis.hset(
            keys.contact(contact_id),
            mapping={"reply_account": account, "reply_chat": chat, "reply_channel": channel},
        )
        return ChatId(chat)

    async def last_seen(self, contact_id: ContactId, account: str, user_id: str) -> datetime | None:
        """When the person last wrote from this identity (not counting edits)."""
        raw = await self.redis.hget(keys.contact(contact_id), f"seen@{account}:{user_id}")
        return datetime.fromisoformat(text(raw)) if raw is not None else None

    async def reply_route(self, contact_id: ContactId) -> tuple[AccountId, ChatId] | None:
        """Where an operator's reply goes: the chat of the contact's latest message."""
        account, chat = await self.redis.hmget(
            keys.contact(contact_id), ["reply_account", "reply_chat"]
        )
        if account is None or chat is None:
            return None
        return AccountId(text(account)), ChatId(text(chat))
