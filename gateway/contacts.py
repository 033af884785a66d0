"""Identity resolution: (channel account, platform user id) → one contact.

The get-or-create is one Lua script, so two first messages of a new customer handled
at the same moment by two workers still create one contact.
"""

from __future__ import annotations

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
from gateway.store.redis import Redis, text

# KEYS[1] identity key, KEYS[2] contact sequence. ARGV[1] contact-key prefix, then the
# profile fields. The contact key is built in the script because its id is only known
# here (a single Redis or a Sentinel master; not a Cluster).
_RESOLVE = """
local cid = redis.call('GET', KEYS[1])
local created = 0
if not cid then
  cid = tostring(redis.call('INCR', KEYS[2]))
  redis.call('SET', KEYS[1], cid)
  created = 1
end
local key = ARGV[1] .. cid
if created == 1 then
  redis.call('HSET', key, 'first_seen', ARGV[2], 'channel', ARGV[3], 'account', ARGV[4],
             'user_id', ARGV[5])
end
redis.call('HSET', key, 'display_name', ARGV[6], 'username', ARGV[7], 'last_seen', ARGV[2],
           'reply_account', ARGV[4], 'reply_chat', ARGV[8], 'reply_channel', ARGV[3])
if ARGV[9] ~= '' then
  redis.call('HSET', key, 'last_message', ARGV[9])
end
return {cid, created, redis.call('HGET', key, 'first_seen'), redis.call('HGET', key, 'channel'),
        redis.call('HGET', key, 'account')}
"""


class Contacts:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._resolve = redis.register_script(_RESOLVE)

    async def resolve(
        self, sender: Sender, seen_at: datetime, message_id: MessageId | None = None
    ) -> tuple[Contact, bool]:
        """The sender's contact (created on first contact) and whether it is new.

        The latest profile (name, username), the chat to reply into and (when given)
        the customer's latest message there are refreshed.
        """
        cid, created, first_seen, channel, account = await self._resolve(
            keys=[keys.identity(sender.account, sender.user_id), keys.CONTACT_SEQ],
            args=[
                keys.contact(""),
                seen_at.astimezone(UTC).isoformat(),
                sender.channel.value,
                sender.account,
                sender.user_id,
                sender.display_name,
                sender.username or "",
                sender.chat_id,
                message_id or "",
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
        return contact, bool(created)

    async def get(self, contact_id: ContactId) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.contact(contact_id))
        return {text(k): text(v) for k, v in raw.items()}

    async def last_message(self, contact_id: ContactId) -> tuple[Destination, MessageId] | None:
        """The customer's latest message and its chat (what a read receipt marks)."""
        account, chat, message = await self.redis.hmget(
            keys.contact(contact_id), ["reply_account", "reply_chat", "last_message"]
        )
        if account is None or chat is None or message is None:
            return None
        destination = Destination(account=AccountId(text(account)), chat_id=ChatId(text(chat)))
        return destination, MessageId(text(message))

    async def reply_route(self, contact_id: ContactId) -> tuple[AccountId, ChatId] | None:
        """Where an operator's reply goes: the chat of the contact's latest message."""
        account, chat = await self.redis.hmget(
            keys.contact(contact_id), ["reply_account", "reply_chat"]
        )
        if account is None or chat is None:
            return None
        return AccountId(text(account)), ChatId(text(chat))
