"""The webhooks' Prometheus metrics, registered in the gateway's registry when one is
given (``GET /metrics``), else in a private one (a component on its own, in tests).

- ``gateway_webhook_deliveries_total{target,result}``: ``delivered`` / ``dead_lettered``
- ``gateway_webhook_retries_total{target,reason}``: ``5xx``, ``429``, ``408``,
  ``timeout``, ``connection``
- ``gateway_webhook_lag_seconds{target}``: from the event being recorded to the
  target's 2xx (a histogram; retries and backlog show up here)
- ``gateway_webhook_backlog{target}``, ``gateway_webhook_dead_letters{target}``: queued
  and parked deliveries, refreshed every few seconds from Redis
"""

from __future__ import annotations

import weakref
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.metrics import LATENCY_BUCKETS

_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, Stats] = weakref.WeakKeyDictionary()


class Stats:
    @classmethod
    def of(cls, registry: CollectorRegistry | None) -> Stats:
        """The registry's webhook metrics, made once: a component rebuilt in the same
        process (a config reload) keeps counting in them instead of registering the
        same names again, which the registry refuses."""
        if registry is None:
            return cls()
        found = _SHARED.get(registry)
        if found is None:
            found = _SHARED[registry] = cls(registry)
        return found

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.deliveries = Counter(
            "gateway_webhook_deliveries_total",
            "CRM webhook deliveries by result (delivered, dead_lettered).",
            ["target", "result"],
            registry=r,
        )
        self.retries = Counter(
            "gateway_webhook_retries_total",
            "CRM webhook attempts that failed and were scheduled again, by reason.",
            ["target", "reason"],
            registry=r,
        )
        self.lag = Histogram(
            "gateway_webhook_lag_seconds",
            "From an event being recorded to its delivery to a CRM webhook.",
            ["target"],
            buckets=(*LATENCY_BUCKETS, 3600, 6 * 3600, 24 * 3600),
            registry=r,
        )
        self.backlog = Gauge(
            "gateway_webhook_backlog",
            "CRM webhook deliveries queued (including those waiting for a retry).",
            ["target"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "gateway_webhook_dead_letters",
            "CRM webhook deliveries parked among the dead letters.",
            ["target"],
            registry=r,
        )
        self.counts: Tally[tuple[str, str]] = Tally()
        """The same events as plain numbers, ``(target, what)`` → count, where ``what``
        is ``delivered``, ``dead_lettered`` or ``retry:<reason>`` (this replica only)."""

    def delivered(self, target: str, lag_seconds: float) -> None:
        self.deliveries.labels(target, "delivered").inc()
        self.lag.labels(target).observe(max(0.0, lag_seconds))
        self.counts[target, "delivered"] += 1

    def retried(self, target: str, reason: str) -> None:
        self.retries.labels(target, reason).inc()
        self.counts[target, f"retry:{reason}"] += 1

    def dead(self, target: str) -> None:
        self.deliveries.labels(target, "dead_lettered").inc()
        self.counts[target, "dead_lettered"] += 1
