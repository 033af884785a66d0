"""Prometheus metrics (``GET /metrics``), one registry per running gateway.

Counters and histograms count what *this* replica did: sum them over the replicas.
The gauges set from Redis when ``/metrics`` is scraped (open tasks, overdue, operators;
see :mod:`gateway.admin.gauges`) describe the whole installation: every replica reports
the same value, so take ``max`` over the replicas, not the sum.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.admin.events import FIRST_RESPONSE_BUCKETS, RESOLUTION_BUCKETS

BEFORE_SCRAPE: web.AppKey[list[Callable[[], Awaitable[None]]]] = web.AppKey("before_scrape", list)
"""Refreshes ``GET /metrics`` awaits, in order, before it renders (the admin's gauges).
Only that route runs them: a hook, not a middleware every webhook would pass through."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter(
            "gateway_inbound_total",
            "Inbound platform events by result (accepted, duplicate, ignored, rejected).",
            ["channel", "account", "result"],
            registry=r,
        )
        self.outbound = Counter(
            "gateway_outbound_total",
            "Outbound sends by direction and result (sent, failed).",
            ["direction", "channel", "account", "result"],
            registry=r,
        )
        self.retries = Counter(
            "gateway_outbound_retries_total",
            "Outbound sends retried after a transient platform error.",
            ["channel", "account", "reason"],
            registry=r,
        )
        self.poll_retries = Counter(
            "gateway_poll_retries_total",
            "Long-poll requests retried after a transient error (the platform's or Redis').",
            ["channel", "account"],
            registry=r,
        )
        self.rate_wait = Counter(
            "gateway_rate_limit_wait_seconds_total",
            "Seconds spent waiting for a platform's rate limit.",
            ["channel", "account"],
            registry=r,
        )
        self.latency = Histogram(
            "gateway_delivery_latency_seconds",
            "From receipt (or operator reply) to delivery on the other side.",
            ["direction"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "gateway_queue_depth",
            "Stream entries not yet handled, by stream family.",
            ["stream"],
            registry=r,
        )
        self.topics_recreated = Counter(
            "gateway_topics_recreated_total",
            "Staff topics recreated after Telegram reported them lost.",
            registry=r,
        )

        # Observed by the statistics consumer, by the replica that counted the event
        # (each event once across replicas).
        self.first_response = Histogram(
            "gateway_first_response_seconds",
            "From a task's opening to the operator's first answer, per account.",
            ["account"],
            buckets=FIRST_RESPONSE_BUCKETS,
            registry=r,
        )
        self.resolution = Histogram(
            "gateway_resolution_seconds",
            "From a task's opening to its close (carried over or merged: not counted).",
            ["account"],
            buckets=RESOLUTION_BUCKETS,
            registry=r,
        )
        self.ratings = Counter(
            "gateway_csat_ratings_total",
            "Customers' satisfaction ratings (1-5, or none: did not answer), per account.",
            ["account", "rating"],
            registry=r,
        )
        self.stats_skipped = Counter(
            "gateway_stats_skipped_total",
            "Events the statistics could not count (malformed, or failing repeatedly).",
            ["reason"],
            registry=r,
        )
        # Set from Redis at scrape time: the same on every replica (take the max).
        self.open_tasks = Gauge(
            "gateway_open_tasks",
            "Open tasks by status (new, in_work, returned).",
            ["status"],
            registry=r,
        )
        self.overdue = Gauge(
            "gateway_overdue_tasks",
            "Open tasks whose customer waits past the response deadline.",
            registry=r,
        )
        self.operator_load = Gauge(
            "gateway_operator_load",
            "Open tasks an operator is responsible for.",
            ["operator", "name"],
            registry=r,
        )
        self.operator_capacity = Gauge(
            "gateway_operator_capacity",
            "How many open tasks an operator may have (staff.operators[].max_chats).",
            ["operator", "name"],
            registry=r,
        )
        self.operator_online = Gauge(
            "gateway_operator_online",
            "1 while an operator is online (/online), 0 when offline.",
            ["operator", "name"],
            registry=r,
        )
        self.gauges_truncated = Gauge(
            "gateway_open_tasks_truncated",
            "1 when there were more open tasks than one scrape reads (counts are a floor).",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
