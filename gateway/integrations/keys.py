"""The Redis keys of the CRM webhooks (all under ``gw:hook:``), with their lifetimes.

They sit here rather than in :mod:`gateway.store.keys` only because this package was
written beside it; the shapes follow the same rules (one place, prefix first).
"""

from __future__ import annotations

from gateway.store import keys

GROUP = "webhooks"
"""The consumer group the fan-out reads the events stream (``gw:events``) through."""
FANOUT_LEASE = keys.lease("webhooks:fanout")
"""One replica at a time fans events out (TTL: ``bus.lease_seconds``), so that a
contact's events enter its queues in the order they were recorded."""

_HOOK = f"{keys.PREFIX}:hook"


def queue(target: str, contact: str) -> str:
    """List: the contact's deliveries to a target, oldest first (the head is the one
    being tried). Permanent until delivered or dead-lettered; Redis drops it empty."""
    return f"{_HOOK}:q:{target}:{contact}"


def due(target: str) -> str:
    """Sorted set: contacts with deliveries to a target, scored by when (epoch ms) the
    head may be tried next; while a worker holds the contact, by when its claim ends."""
    return f"{_HOOK}:due:{target}"


def claims(target: str) -> str:
    """Hash: contact → the token of the worker that holds it (checked by every write)."""
    return f"{_HOOK}:claim:{target}"


def tries(target: str) -> str:
    """Hash: delivery id → its failed attempts so far (JSON), while it is retried."""
    return f"{_HOOK}:tries:{target}"


def backlog(target: str) -> str:
    """Counter: deliveries queued for a target (kept with the queues, for metrics)."""
    return f"{_HOOK}:backlog:{target}"


DEAD = f"{_HOOK}:dead"
"""Sorted set of every dead letter's delivery id, scored by ``DEAD_SEQ`` (a cursor)."""
DEAD_ITEMS = f"{_HOOK}:dead-items"
"""Hash: delivery id → the dead letter (JSON). Permanent until replayed or discarded."""
DEAD_SEQ = f"{_HOOK}:seq:dead"


def dead(target: str) -> str:
    """Sorted set: one target's dead letters (same members and scores as ``DEAD``)."""
    return f"{_HOOK}:dead:{target}"
