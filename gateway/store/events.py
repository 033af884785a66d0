"""The events stream (:data:`keys.EVENTS`): what happened, in commit order, for whoever
integrates with the gateway — CRM webhooks, the statistics, exports.

Every entry is written inside the transaction that makes it true, so an event exists
exactly when its change does. Fields: ``type`` (one of
:data:`gateway.config.EVENT_TYPES`), ``at`` (ISO-8601), ``contact``, ``process``,
``task``, ``actor`` (an operator's id, ``customer``, ``system``, ``api:<name>``) and
``data`` (a JSON object of strings).
"""

from __future__ import annotations

import json

from redis.asyncio.client import Pipeline

from gateway import process as bp
from gateway.store import keys
from gateway.store.writes import Writes


def record_event(pipe: Writes | Pipeline, contact_id: str, event: bp.Event) -> None:
    """Append ``event`` to the events stream (inside the caller's commit)."""
    pipe.xadd(
        keys.EVENTS,
        {
            "type": event.type,
            "at": event.at.isoformat(),
            "contact": contact_id,
            "process": event.process,
            "task": str(event.task),
            "actor": event.actor or "",
            "data": json.dumps(event.data, ensure_ascii=False),
        },
        maxlen=keys.EVENTS_MAXLEN,
        approximate=True,
    )
