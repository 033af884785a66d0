"""Gauges ``/metrics`` reads from Redis when it is scraped: open tasks by status,
overdue tasks, and each operator's load, capacity and availability.

The work is bounded whatever the size of the installation: overdue and load are
``ZCOUNT``s on the indexes the process store keeps (``keys.AWAITING``, ``keys.OWNED``);
statuses are read by a script over at most ``SCAN_LIMIT`` contacts, in chunks (Redis
is never blocked for long), and return only numbers — no process crosses the network.
Past the limit the counts are a floor and ``gateway_open_tasks_truncated`` says so.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gateway.app import App
from gateway.process import Status
from gateway.store import keys
from gateway.store.redis import text

SCAN_LIMIT = 10_000
CHUNK = 250
"""Processes per script call: about 3 ms of Redis time each (measured, 1 KB processes)."""
OPEN = (Status.NEW, Status.IN_WORK, Status.RETURNED)

# KEYS: processes. Returns the status of each one's current (last) task, or '' for a
# missing one. The current task is the last in the process JSON, and every task has one
# "status" field; a quote inside a title is escaped (\"), so it cannot match.
_STATUSES = """
local found = {}
for i, key in ipairs(KEYS) do
  local raw = redis.call('GET', key)
  local last = ''
  if raw then
    for status in string.gmatch(raw, '"status":"([a-z_]+)"') do last = status end
  end
  found[i] = last
end
return found
"""


class Gauges:
    def __init__(self, gateway: App) -> None:
        self.gateway = gateway
        self._script: Any = None
        """The status script, registered on first use (Redis connects after install)."""

    async def refresh(self) -> None:
        """Set the gauges from Redis (a few commands; see the module's note)."""
        gateway = self.gateway
        redis = gateway.redis
        if redis is None:
            return
        metrics = gateway.metrics
        now_ms = int(gateway.clock().timestamp() * 1000)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zrange(keys.AWAITING, 0, SCAN_LIMIT - 1)
            pipe.zrange(keys.OWNED, 0, SCAN_LIMIT - 1)
            pipe.zcount(keys.AWAITING, "-inf", f"({now_ms}")
            pipe.hgetall(keys.PRESENCE)
            awaiting, owned, overdue, presence = await pipe.execute()
        contacts = sorted({text(c) for c in [*awaiting, *owned]})
        truncated = len(awaiting) >= SCAN_LIMIT or len(owned) >= SCAN_LIMIT
        statuses = await self._statuses(contacts[:SCAN_LIMIT])
        for status in OPEN:
            metrics.open_tasks.labels(status.value).set(statuses[status.value])
        metrics.gauges_truncated.set(1 if truncated else 0)
        metrics.overdue.set(int(overdue))
        await self._operators({text(k): text(v) for k, v in presence.items()})

    async def _statuses(self, contacts: list[str]) -> Counter[str]:
        redis = self.gateway.redis
        assert redis is not None
        if self._script is None:
            self._script = redis.register_script(_STATUSES)
        found: Counter[str] = Counter()
        for start in range(0, len(contacts), CHUNK):
            chunk = [keys.process(c) for c in contacts[start : start + CHUNK]]
            found.update(text(s) for s in await self._script(keys=chunk))
        return found

    async def _operators(self, states: dict[str, str]) -> None:
        gateway = self.gateway
        redis = gateway.redis
        assert redis is not None
        configured = {str(o.id): o for o in gateway.settings.staff.operators}
        ids = [i for i in (list(configured) or sorted(states)) if i.isdigit()]
        async with redis.pipeline(transaction=False) as pipe:
            for operator in ids:
                pipe.zcount(keys.OWNED, int(operator), int(operator))
            loads = await pipe.execute()
        metrics = gateway.metrics
        for operator, load in zip(ids, loads, strict=True):
            known = configured.get(operator)
            name = known.name if known else ""
            metrics.operator_load.labels(operator, name).set(int(load))
            online = states.get(operator, "").startswith("online:")
            metrics.operator_online.labels(operator, name).set(1 if online else 0)
            if known is not None:
                metrics.operator_capacity.labels(operator, name).set(known.max_chats)
