"""The two-way message map: a customer's message ↔ its copy in the staff topic.

Replies, edits (and later reactions) find their counterpart through it, in both
directions (as mautrix-telegram's ``db/message.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline

from gateway.model import AccountId, ChatId, MessageId
from gateway.store import keys
from gateway.store.redis import Redis, text
from gateway.store.writes import Writes


@dataclass(frozen=True, slots=True)
class MessageRef:
    account: AccountId
    chat_id: ChatId
    message_id: MessageId


@dataclass(frozen=True, slots=True)
class Peer:
    ref: MessageRef
    text: str
    """The customer-side text last seen (to tell real edits from invisible ones)."""
    receipt: int = 0
    """How far the customer's messenger reported this message got (0: nothing yet)."""
    via: str = ""
    """For a staff copy: the bot that posted it (``file_scope``; "" = the staff bot),
    the only one that may edit it."""
    shared: bool = False
    """The staff copy holds several customer messages (a coalesced burst): editing it
    for one of them would clobber the others."""
    author: str = ""
    """For an operator's message: who wrote it (its customer copy is theirs to delete)."""


def link(
    pipe: Pipeline | Writes,
    a: MessageRef,
    b: MessageRef,
    text: str | None,
    *,
    via: str = "",
    shared: bool = False,
    author: str = "",
) -> None:
    """Map ``a`` ↔ ``b`` inside the caller's transaction (``via``, ``shared``: see
    :class:`Peer`, about ``b``; ``author``: the operator who wrote ``b``)."""
    ttl = int(keys.MESSAGE_MAP_TTL.total_seconds())
    for here, there in ((a, b), (b, a)):
        key = keys.message(here.account, here.chat_id, here.message_id)
        fields: dict[Any, str] = {
            "account": there.account,
            "chat": there.chat_id,
            "message": there.message_id,
            "text": text or "",
        }
        if here is a:
            fields.update(via=via, shared="1" if shared else "")
        elif author:
            fields["author"] = author
        pipe.hset(key, mapping=fields)
        pipe.expire(key, ttl)


async def peer(redis: Redis, ref: MessageRef) -> Peer | None:
    raw = await redis.hgetall(keys.message(ref.account, ref.chat_id, ref.message_id))
    if not raw:
        return None
    value = {text(k): text(v) for k, v in raw.items()}
    if "account" not in value:
        return None  # only a receipt was recorded for it (it was never linked)
    there = MessageRef(
        AccountId(value["account"]), ChatId(value["chat"]), MessageId(value["message"])
    )
    return Peer(
        ref=there,
        text=value.get("text", ""),
        receipt=int(value.get("receipt") or 0),
        via=value.get("via", ""),
        shared=bool(value.get("shared")),
        author=value.get("author", ""),
    )


def mark_receipt(pipe: Pipeline, ref: MessageRef, rank: int) -> None:
    """Remember the furthest delivery status of ``ref`` (see :class:`Peer`)."""
    pipe.hset(keys.message(ref.account, ref.chat_id, ref.message_id), "receipt", rank)
