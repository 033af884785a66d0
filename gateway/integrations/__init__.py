"""Talking to other systems: the CRM webhooks (``integrations.webhooks``).

Every event of the events stream (``gw:events``) that a target wants is delivered to
it as a signed JSON POST, in order per contact, retried with backoff for the target's
``retry_for_hours``, then parked among the dead letters (listable, replayable). See
``docs/integrations.md`` for what a receiver gets and how it verifies it.
"""

from gateway.integrations.dead import (
    DeadLetter,
    DeadLetterError,
    DeadPage,
    Moved,
    discard,
    list_dead,
    replay,
)
from gateway.integrations.payload import Delivery, signature
from gateway.integrations.sender import RetryPolicy
from gateway.integrations.service import Webhooks

__all__ = [
    "DeadLetter",
    "DeadLetterError",
    "DeadPage",
    "Delivery",
    "Moved",
    "RetryPolicy",
    "Webhooks",
    "discard",
    "list_dead",
    "replay",
    "signature",
]
