"""Prometheus metrics (``GET /metrics``), one registry per running gateway."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
