"""``/contacts``: find people, read one, merge two, split a messenger back out.

Search resolves a phone in any written form and an e-mail exactly as ``/find`` does (the
same normalisation and index), and a name or @username by the same scan. Merge and
unmerge are the staff commands' own operations (:meth:`People.merge`,
:meth:`Merger.unmerge`): one atomic step each, with the same notices in the topics and
the task card refreshed; the API client is recorded as the actor.
"""

from __future__ import annotations

import structlog
from pydantic import Field, model_validator

from gateway.api.errors import conflict, invalid, not_found
from gateway.api.paging import Cursor, PageQuery, walk
from gateway.api.registry import Call, In, Out, Routes
from gateway.api.schemas import (
    CONTACT_ID,
    Contact,
    ContactPath,
    Page,
    contacts_out,
    existing_contact,
)
from gateway.identity import InvalidIdentity, normalise_email, normalise_phone
from gateway.model import ContactId
from gateway.staff.desk import Desk
from gateway.staff.people import split_notices
from gateway.store import keys
from gateway.store.merge import MergeRefused
from gateway.store.redis import text

log = structlog.get_logger(__name__)
routes = Routes("contacts", "People, each with every messenger identity, phone and e-mail.")
SEARCH_LIMIT = 50


class ContactsQuery(PageQuery):
    q: str | None = Field(None, min_length=2, max_length=200)
    """Anything ``/find`` takes: a phone in any written form, an e-mail, a name or @username."""
    phone: str | None = Field(None, min_length=3, max_length=40)
    email: str | None = Field(None, min_length=3, max_length=320)
    name: str | None = Field(None, min_length=2, max_length=200)
    """Part of the display name or username (case-insensitive)."""
    include_merged: bool = False
    """List contacts merged into others too (a listing only; a search answers the
    surviving contact)."""

    @model_validator(mode="after")
    def _one_search(self) -> ContactsQuery:
        given = [n for n in ("q", "phone", "email", "name") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"search by one of q, phone, email, name (got {', '.join(given)})")
        return self


class ContactPage(Page):
    items: list[Contact]


class MergeIn(In):
    contact_id: str = Field(pattern=CONTACT_ID)
    """The contact to merge into the one in the path (it is absorbed; the path's survives)."""


class MergeResult(Out):
    contact: Contact
    """The surviving contact, with everything the absorbed one had."""
    absorbed: str


class UnmergeIn(In):
    identity: str = Field(min_length=1, max_length=200)
    """Which messenger to split out: ``account:user_id``, an account (``tg_shop``) or a
    messenger (``telegram``) when the contact has one identity there."""


class UnmergeResult(Out):
    contact: Contact
    """The contact the identity left."""
    split: Contact
    """The contact it belongs to now: the one it came from by a merge, or a new one."""


@routes.route("GET", "/contacts", scope="read", query=ContactsQuery, response=ContactPage)
async def list_contacts(call: Call) -> ContactPage:
    """Find or list contacts

    With ``q``, ``phone``, ``email`` or ``name``: the matching people (at most ``limit``,
    50 at most, on one page). Without: every contact, page by page (``cursor``)."""
    query, desk = call.query(ContactsQuery), call.desk
    searching = query.q or query.phone or query.email or query.name
    if searching is not None:
        if query.cursor is not None:
            raise invalid(
                ["query", "cursor"], "A search answers one page; a cursor pages a listing."
            )
        ids = await _search(desk, query)
        people = list(dict.fromkeys([await desk.contacts.survivor(c) for c in ids]))
        found = await contacts_out(desk, people[: min(query.limit, SEARCH_LIMIT)])
        return ContactPage(items=[c for c in found if c is not None], next_cursor=None)

    async def expand(ids: list[str]) -> list[ContactId]:
        if query.include_merged:
            return [ContactId(i) for i in ids]
        async with desk.redis.pipeline(transaction=False) as pipe:
            for contact_id in ids:
                pipe.hget(keys.contact(contact_id), "merged_into")
            merged = await pipe.execute()
        return [ContactId(i) for i, m in zip(ids, merged, strict=True) if m is None]

    page, after = await walk(
        desk.redis, keys.contact(""), Cursor.decode(query.cursor), query.limit, expand
    )
    items = await contacts_out(desk, page)
    return ContactPage(
        items=[c for c in items if c is not None], next_cursor=after.encode() if after else None
    )


async def _search(desk: Desk, query: ContactsQuery) -> list[ContactId]:
    region = desk.settings.contacts.default_region
    index: str | None = None
    try:
        if query.phone is not None:
            index = keys.phone(normalise_phone(query.phone, region))
        elif query.email is not None:
            index = keys.email(normalise_email(query.email))
    except InvalidIdentity as exc:
        raise invalid(["query", "phone" if query.phone else "email"], str(exc)) from None
    if index is not None:
        owner = await desk.redis.get(index)
        return [ContactId(text(owner))] if owner is not None else []
    if query.q is not None:  # as /find reads it: a phone, else an e-mail, else a name
        wanted = query.q.strip()
        return [ContactId(c) for c in await desk.people.named(wanted)] if wanted else []
    needle = (query.name or "").strip().lstrip("@").casefold()
    if not needle:
        return []
    return [ContactId(c) for c in await desk.people.by_name(needle)]


@routes.route(
    "GET",
    "/contacts/{contact_id}",
    scope="read",
    path_params=ContactPath,
    response=Contact,
    errors=(404,),
)
async def get_contact(call: Call) -> Contact:
    """One contact

    A contact merged into another is still found: ``merged_into`` names the one that
    stands for the person now."""
    return await existing_contact(call.desk, ContactId(call.path(ContactPath).contact_id))


@routes.route(
    "POST",
    "/contacts/{contact_id}/merge",
    scope="write",
    path_params=ContactPath,
    body=MergeIn,
    response=MergeResult,
    errors=(404, 409),
    idempotent=True,
)
async def merge_contacts(call: Call) -> MergeResult:
    """Merge another contact into this one

    As ``/merge`` in the topic: identities, phones, e-mails, processes and timers move
    over in one atomic step, the open tasks combine into one (the earlier deadline
    wins), the absorbed topic gets a "merged into" link and is closed. Merging a contact
    already merged into this one answers the same result (a retry is harmless)."""
    desk = call.desk
    survivor = ContactId(call.path(ContactPath).contact_id)
    absorbed = ContactId(call.body(MergeIn).contact_id)
    if survivor == absorbed:
        raise invalid(["body", "contact_id"], "That is this contact itself.")
    kept, gone = await desk.contacts.get(survivor), await desk.contacts.get(absorbed)
    if not kept or not gone:
        raise not_found(f"No contact #{survivor if not kept else absorbed}.")
    if gone.get("merged_into") != survivor:
        try:
            await desk.people.merge(survivor, absorbed, call.now, call.actor, call.once)
        except MergeRefused as exc:
            raise conflict(str(exc)) from None
        log.info("api.contacts_merged", survivor=survivor, absorbed=absorbed, actor=call.actor)
    return MergeResult(contact=await existing_contact(desk, survivor), absorbed=absorbed)


@routes.route(
    "POST",
    "/contacts/{contact_id}/unmerge",
    scope="write",
    path_params=ContactPath,
    body=UnmergeIn,
    response=UnmergeResult,
    errors=(404, 409),
)
async def unmerge_contact(call: Call) -> UnmergeResult:
    """Split a messenger out of a contact

    As ``/unmerge``: the identity goes back into the contact it came from by a merge
    (restored, with its topic), or into a new contact; its earlier tasks stay where they
    were handled. The two are marked as different people, so dedup never merges them
    again by itself."""
    desk = call.desk
    contact_id = ContactId(call.path(ContactPath).contact_id)
    data = await desk.contacts.get(contact_id)
    if not data:
        raise not_found("No such contact.")
    if "merged_into" in data:
        raise conflict(
            f"Contact #{contact_id} is merged into #{data['merged_into']}: split it from there."
        )
    identity = await _identity(desk, contact_id, call.body(UnmergeIn).identity.strip())
    try:
        target = await desk.people.merger.unmerge(contact_id, identity, call.now, call.actor)
    except MergeRefused as exc:
        raise conflict(str(exc)) from None
    here, there = split_notices(contact_id, identity, target, call.once, by=f" (by {call.actor})")
    await desk.commit(None, here, there)
    log.info("api.contact_unmerged", identity=identity, into=target, actor=call.actor)
    left = await existing_contact(desk, contact_id)
    return UnmergeResult(contact=left, split=await existing_contact(desk, target))


async def _identity(desk: Desk, contact_id: ContactId, wanted: str) -> str:
    """``account:user_id``, an account or a messenger → the one identity it names (the
    same choice as ``/unmerge``)."""
    matching, identities = await desk.people.identities_named(contact_id, wanted)
    if len(matching) != 1:
        why = "names several: give account:user_id" if matching else "is not one of its messengers"
        listed = ", ".join(identities)
        raise invalid(["body", "identity"], f"{wanted!r} {why} ({listed}).")
    return matching[0]
