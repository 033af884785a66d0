"""Merging two contacts that are one person, atomically.

Everything the absorbed contact had moves to the survivor in one MULTI/EXEC under
WATCH: its identities (so every later message of any of the person's messengers lands
with the survivor), phones, e-mails, its processes (combined by
:func:`gateway.process.merge`: never two open tasks) and its timers; the absorbed
contact keeps its record, marked ``merged_into``, and the lists of what it brought (for
unmerge). A process step racing the merge fails its compare-and-set and starts again on
the survivor (see ``ContactMerged``); the merge itself retries if anything it read
changed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from gateway import process as bp
from gateway.errors import GatewayError
from gateway.model import ContactId
from gateway.store import keys
from gateway.store.events import record_event
from gateway.store.processes import PROCESS, ProcessStore
from gateway.store.redis import Redis, text

MAX_ATTEMPTS = 20
_ROUTE = ("reply_account", "reply_chat", "reply_channel", "last_message", "last_seen")

Effects = Callable[[Pipeline, bp.Merged], None]


PER_IDENTITY = ("chat@", "seen@")
"""Contact fields kept per identity (``chat@account:user``, ``seen@account:user``)."""


class MergeRefused(GatewayError):
    """A merge that cannot be done (the message says why, for staff)."""


class Merger:
    def __init__(self, redis: Redis, processes: ProcessStore) -> None:
        self.redis = redis
        self.processes = processes

    async def merge(
        self,
        survivor: ContactId,
        absorbed: ContactId,
        at: datetime,
        actor: str,
        effects: Effects | None = None,
    ) -> bp.Merged:
        """Merge ``absorbed`` into ``survivor``; ``effects`` adds the caller's writes
        (notices, the ack of the entry that asked) to the same transaction."""
        if survivor == absorbed:
            raise MergeRefused("That is this contact itself.")
        watched = [
            keys.contact(survivor),
            keys.contact(absorbed),
            keys.process(survivor),
            keys.process(absorbed),
            keys.process_archive(survivor),
            keys.process_archive(absorbed),
            keys.contact_identities(absorbed),
            keys.contact_phones(absorbed),
            keys.contact_emails(absorbed),
        ]
        for _ in range(MAX_ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*watched)
                    result = await self._merge(pipe, survivor, absorbed, at, actor, effects)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue
        raise RuntimeError(f"merging {absorbed} into {survivor} kept racing")

    async def _merge(
        self,
        pipe: Pipeline,
        survivor: ContactId,
        absorbed: ContactId,
        at: datetime,
        actor: str,
        effects: Effects | None,
    ) -> bp.Merged:
        keep = {text(k): text(v) for k, v in (await pipe.hgetall(keys.contact(survivor))).items()}
        gone = {text(k): text(v) for k, v in (await pipe.hgetall(keys.contact(absorbed))).items()}
        for cid, data in ((survivor, keep), (absorbed, gone)):
            if not data:
                raise MergeRefused(f"There is no contact #{cid}.")
            if "merged_into" in data:
                raise MergeRefused(f"Contact #{cid} is already merged into #{data['merged_into']}.")
        raw_keep, raw_gone = await pipe.mget(keys.process(survivor), keys.process(absorbed))
        archive = [
            PROCESS.validate_json(raw)
            for key in (keys.process_archive(survivor), keys.process_archive(absorbed))
            for raw in await pipe.lrange(key, 0, -1)
        ]
        identities = [text(v) for v in await pipe.smembers(keys.contact_identities(absorbed))]
        phones = [text(v) for v in await pipe.smembers(keys.contact_phones(absorbed))]
        emails = [text(v) for v in await pipe.smembers(keys.contact_emails(absorbed))]
        result = bp.merge(
            PROCESS.validate_json(raw_keep) if raw_keep is not None else None,
            PROCESS.validate_json(raw_gone) if raw_gone is not None else None,
            at,
        )

        pipe.multi()  # type: ignore[no-untyped-call]
        for identity in identities:
            account, _, user_id = identity.partition(":")
            pipe.set(keys.identity(account, user_id), survivor)
        if identities:
            pipe.sadd(keys.contact_identities(survivor), *identities)
        for number in phones:
            pipe.set(keys.phone(number), survivor)
        if phones:
            pipe.sadd(keys.contact_phones(survivor), *phones)
        for address in emails:
            pipe.set(keys.email(address), survivor)
        if emails:
            pipe.sadd(keys.contact_emails(survivor), *emails)
        stamp = at.astimezone(UTC).isoformat()
        pipe.hset(keys.contact(absorbed), mapping={"merged_into": survivor, "merged_at": stamp})
        pipe.sadd(keys.contact_absorbed(survivor), absorbed)
        # Each identity's chat (for /via) and when it last wrote (reply windows).
        per_identity: dict[FieldT, EncodableT] = {
            f: v for f, v in gone.items() if f.startswith(PER_IDENTITY)
        }
        if per_identity:
            pipe.hset(keys.contact(survivor), mapping=per_identity)
        if gone.get("last_seen", "") > keep.get("last_seen", ""):
            # Replies go where the person wrote last, whichever contact that was.
            pipe.hset(keys.contact(survivor), mapping={f: gone[f] for f in _ROUTE if f in gone})
        # Processes: the combined current one, everything else in the archive.
        ProcessStore.forget_state(pipe, absorbed)
        if result.current is not None:
            self.processes.store_state(pipe, survivor, result.current)
        history = sorted([*archive, *result.archived], key=lambda p: p.opened_at, reverse=True)
        pipe.delete(keys.process_archive(survivor), keys.process_archive(absorbed))
        if history:
            pipe.rpush(
                keys.process_archive(survivor),
                *[PROCESS.dump_json(p) for p in history[: keys.PROCESS_ARCHIVE_LIMIT]],
            )
        for event in result.events:
            record_event(pipe, survivor, event)
        current = result.current
        record_event(
            pipe,
            survivor,
            bp.Event(
                "contact.merged",
                at,
                current.number if current else "",
                current.task.number if current else 0,
                actor,
                {"absorbed": absorbed},
            ),
        )
        if effects is not None:
            effects(pipe, result)
        return result

    async def unmerge(
        self, survivor: ContactId, identity: str, at: datetime, actor: str = bp.SYSTEM
    ) -> ContactId:
        """Split ``identity`` (``account:user_id``) out of ``survivor`` into a contact of
        its own: back into the contact it came from by a merge (which is restored, with
        its phones and e-mails), or a new one. Processes and history stay where they
        were handled. The two are marked as different people, so dedup never merges
        them again by itself. Returns the contact the identity now belongs to."""
        account, _, user_id = identity.partition(":")
        for _ in range(MAX_ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(
                        keys.contact(survivor),
                        keys.contact_identities(survivor),
                        keys.contact_absorbed(survivor),
                        keys.identity(account, user_id),
                    )
                    own = {text(v) for v in await pipe.smembers(keys.contact_identities(survivor))}
                    if identity not in own:
                        raise MergeRefused(f"{identity} is not one of this contact's messengers.")
                    if len(own) == 1:
                        raise MergeRefused("It is this contact's only messenger: nothing to split.")
                    origin, rest = None, set()
                    for absorbed in await pipe.smembers(keys.contact_absorbed(survivor)):
                        cid = ContactId(text(absorbed))
                        brought = {
                            text(v) for v in await pipe.smembers(keys.contact_identities(cid))
                        }
                        if identity in brought:
                            origin, rest = cid, (brought & own) - {identity}
                            break
                    data = {
                        text(k): text(v)
                        for k, v in (await pipe.hgetall(keys.contact(survivor))).items()
                    }
                    target = origin or ContactId(str(await self.redis.incr(keys.CONTACT_SEQ)))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._split(pipe, survivor, target, identity, data, at, restored=bool(origin))
                    if origin is not None and not rest:
                        # Nothing of it is left here: it is no longer an absorbed one.
                        pipe.srem(keys.contact_absorbed(survivor), origin)
                    data = {"identity": identity, "into": target}
                    event = bp.Event("contact.unmerged", at, "", 0, actor, data)
                    record_event(pipe, survivor, event)
                    await pipe.execute()
                    return target
                except WatchError:
                    continue
        raise RuntimeError(f"splitting {identity} out of {survivor} kept racing")

    @staticmethod
    def _split(
        pipe: Pipeline,
        survivor: ContactId,
        target: ContactId,
        identity: str,
        data: dict[str, str],
        at: datetime,
        *,
        restored: bool,
    ) -> None:
        account, _, user_id = identity.partition(":")
        chat_field, seen_field = f"chat@{identity}", f"seen@{identity}"
        chat = data.get(chat_field, user_id)
        route: dict[FieldT, EncodableT] = {
            "reply_account": account,
            "reply_chat": chat,
            chat_field: chat,
        }
        if seen_field in data:
            route[seen_field] = data[seen_field]
        pipe.set(keys.identity(account, user_id), target)
        pipe.srem(keys.contact_identities(survivor), identity)
        pipe.hdel(keys.contact(survivor), chat_field, seen_field)
        if restored:
            pipe.hdel(keys.contact(target), "merged_into", "merged_at")
            pipe.hset(keys.contact(target), mapping=route)
        else:
            pipe.sadd(keys.contact_identities(target), identity)
            pipe.hset(
                keys.contact(target),
                mapping={
                    **route,
                    "first_seen": at.astimezone(UTC).isoformat(),
                    "display_name": data.get("display_name", f"Contact {target}"),
                    "channel": data.get("channel", "telegram"),
                    "reply_channel": data.get("channel", "telegram"),
                    "account": account,
                    "user_id": user_id,
                    "kind": data.get("kind", "client"),
                },
            )
        if data.get("reply_account") == account and data.get("reply_chat") == chat:
            # The survivor's replies went to the identity that left: use another one.
            other = next((f for f in data if f.startswith("chat@") and f != chat_field), None)
            if other is not None:
                acc = other.removeprefix("chat@").partition(":")[0]
                pipe.hset(
                    keys.contact(survivor),
                    mapping={"reply_account": acc, "reply_chat": data[other]},
                )
        pipe.sadd(keys.contact_distinct(survivor), target)
        pipe.sadd(keys.contact_distinct(target), survivor)
