"""Which forum topic of the staff group belongs to which contact, both ways."""

from __future__ import annotations

from gateway.model import ContactId, TopicId
from gateway.store import keys
from gateway.store.redis import Redis, text

# Forget a topic only if it is still the one we found lost: another worker may already
# have recreated it (then the mapping points at the new topic and must stay).
_FORGET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""


class Topics:
    def __init__(self, redis: Redis, staff_chat: int) -> None:
        self.redis = redis
        self.staff_chat = staff_chat
        self._forget = redis.register_script(_FORGET)

    async def get(self, contact_id: ContactId) -> TopicId | None:
        value = await self.redis.get(keys.topic(self.staff_chat, contact_id))
        return TopicId(int(value)) if value is not None else None

    async def bind(self, contact_id: ContactId, topic: TopicId) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.topic(self.staff_chat, contact_id), topic)
            pipe.set(keys.topic_contact(self.staff_chat, topic), contact_id)
            await pipe.execute()

    async def forget(self, contact_id: ContactId, topic: TopicId) -> bool:
        forgotten = await self._forget(
            keys=[
                keys.topic(self.staff_chat, contact_id),
                keys.topic_contact(self.staff_chat, topic),
            ],
            args=[topic],
        )
        if forgotten:
            # The card went away with the topic: the next refresh posts a new one.
            card = keys.card(self.staff_chat, contact_id)
            await self.redis.delete(card, f"{card}:shown")
        return bool(forgotten)

    async def contact_of(self, topic: TopicId) -> ContactId | None:
        value = await self.redis.get(keys.topic_contact(self.staff_chat, topic))
        return ContactId(text(value)) if value is not None else None
