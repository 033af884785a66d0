"""What becomes of each family of Redis keys (:mod:`gateway.store.keys`) in an export.

Three fates. *Exported*: carried in the file and written back as they were (contacts,
their indexes, processes, history, counters…). *Derived*: rebuilt on import from what
is exported (the reverse topic map, the /find word index, the name index). *Transient*:
left behind on purpose — in-flight queues, idempotency markers, leases, rate-limit
state, served files, /find pages, the events feed and the CRM webhooks' delivery queues
fed from it — a restored gateway starts them afresh. The table is code, not prose, so
a test can walk a real store and catch a key family that nobody decided about (a new
feature's keys must be added here).
"""

from __future__ import annotations

from enum import StrEnum

from gateway.store import keys


class Fate(StrEnum):
    EXPORTED = "exported"
    DERIVED = "derived"
    TRANSIENT = "transient"


# Key shapes after "<prefix>:", longest first where one is a prefix of another.
FAMILIES: tuple[tuple[str, Fate], ...] = (
    ("contact:", Fate.EXPORTED),
    ("contact-ids:", Fate.EXPORTED),
    ("contact-phones:", Fate.EXPORTED),
    ("contact-emails:", Fate.EXPORTED),
    ("contact-absorbed:", Fate.EXPORTED),
    ("contact-distinct:", Fate.EXPORTED),
    ("identity:", Fate.EXPORTED),
    ("phone:", Fate.EXPORTED),
    ("email:", Fate.EXPORTED),
    ("topic:", Fate.EXPORTED),
    ("card:", Fate.EXPORTED),
    ("reminder:", Fate.EXPORTED),
    ("process:", Fate.EXPORTED),
    ("processes:", Fate.EXPORTED),
    ("process-number:", Fate.EXPORTED),
    ("seq:contact", Fate.EXPORTED),
    ("seq:process:", Fate.EXPORTED),
    ("history:", Fate.EXPORTED),
    ("timers", Fate.EXPORTED),
    ("awaiting", Fate.EXPORTED),
    ("owned", Fate.EXPORTED),
    ("presence", Fate.EXPORTED),
    ("active", Fate.EXPORTED),
    ("rr:", Fate.EXPORTED),
    ("cursor:", Fate.EXPORTED),
    ("suggested:", Fate.EXPORTED),
    ("msg:", Fate.EXPORTED),
    ("stats:day:", Fate.EXPORTED),
    ("csat:survey:", Fate.EXPORTED),
    ("csat:chat:", Fate.EXPORTED),
    ("csat:pending:", Fate.EXPORTED),
    ("line:", Fate.EXPORTED),
    ("line-start:", Fate.EXPORTED),
    ("watchers:", Fate.EXPORTED),
    ("denied:", Fate.EXPORTED),
    ("topic-contact:", Fate.DERIVED),
    ("watching:", Fate.DERIVED),
    ("word:", Fate.DERIVED),
    ("names:", Fate.DERIVED),
    ("in:", Fate.TRANSIENT),
    ("out:staff:", Fate.TRANSIENT),
    ("out:customer:", Fate.TRANSIENT),
    ("dead:", Fate.TRANSIENT),
    ("seen:", Fate.TRANSIENT),
    ("done:", Fate.TRANSIENT),
    ("applied:", Fate.TRANSIENT),
    ("lease:", Fate.TRANSIENT),
    ("members:", Fate.TRANSIENT),
    ("rate:", Fate.TRANSIENT),
    ("media:", Fate.TRANSIENT),
    ("find:", Fate.TRANSIENT),
    ("events", Fate.TRANSIENT),
    ("stats:seen:", Fate.TRANSIENT),
    ("csat:answer:", Fate.TRANSIENT),
    ("hook:", Fate.TRANSIENT),
    ("import", Fate.TRANSIENT),
    ("flood:", Fate.TRANSIENT),
    ("flood-held:", Fate.TRANSIENT),
)
RAW: dict[str, str] = {
    "stats:day:": "hash",
    "csat:survey:": "string",
    "csat:chat:": "string",
    "csat:pending:": "set",
    "denied:": "string",
}
"""Exported families carried verbatim (``raw`` lines), with their Redis type: state of
other features that belongs to no contact line (daily statistics, counted from events
that are not exported; satisfaction surveys waiting for an answer; the people who
stopped an account writing to them)."""
_EXACT = {"seq:contact", "timers", "awaiting", "owned", "presence", "active", "events", "import"}


def fate(key: str) -> Fate | None:
    """The fate of a full key (``gw:contact:7``); ``None``: a family nobody decided on
    (or not the gateway's key at all)."""
    head = f"{keys.PREFIX}:"
    if not key.startswith(head):
        return None
    rest = key[len(head) :]
    for shape, found in FAMILIES:
        if shape in _EXACT:
            if rest == shape:
                return found
        elif rest.startswith(shape):
            return found
    return None
