"""Delivery's quick retries of one platform call (``Outbox._call_any``): the waits
between attempts, ``retry_after`` honoured, the error raised after the last attempt."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.errors import PermanentError, TransientError
from gateway.metrics import Metrics
from gateway.model import AccountId, Channel, ChatId, Destination
from gateway.outbox import QUICK_ATTEMPTS, Outbox
from gateway.ratelimit import Limiter
from gateway.store.redis import Redis

DEST = Destination(account=AccountId("vk_main"), chat_id=ChatId("42"))


class Platform:
    """Answers a call with the queued outcomes in turn: an exception is raised."""

    channel = Channel.VK
    account = "vk_main"

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def buckets(self, _: Destination) -> list[Any]:
        return []

    async def send(self, _: Platform) -> object:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every asyncio.sleep of the test, recorded and not waited for."""
    slept: list[float] = []
    real = asyncio.sleep

    async def record(seconds: float, *args: Any) -> Any:
        slept.append(seconds)
        return await real(0, *args)

    monkeypatch.setattr(asyncio, "sleep", record)
    return slept


def outbox(redis: Redis, max_backoff: float = 60.0) -> Any:
    metrics = Metrics()
    return SimpleNamespace(
        limiter=Limiter(redis, enabled=False), metrics=metrics, max_backoff=max_backoff
    )


def retries_counted(box: Any, reason: str) -> float:
    value = box.metrics.registry.get_sample_value(
        "gateway_outbound_retries_total",
        {"channel": "vk", "account": "vk_main", "reason": reason},
    )
    return value or 0.0


async def test_waits_double_from_a_fifth_of_a_second_and_honour_retry_after(
    redis: Redis, sleeps: list[float]
) -> None:
    platform = Platform(
        TransientError("vk", "502"),
        TransientError("vk", "reset"),
        TransientError("vk", "too many", retry_after=3.0),
        "sent",
    )
    box = outbox(redis)
    result = await Outbox._call_any(box, [platform], DEST, platform.send)
    assert result == ("sent", platform)
    assert sleeps == [0.2, 0.4, 3.0]  # 0.8 s would be sooner than retry_after
    assert retries_counted(box, "transient") == 2
    assert retries_counted(box, "retry_after") == 1


async def test_the_wait_is_capped_and_the_last_error_is_raised(
    redis: Redis, sleeps: list[float]
) -> None:
    errors = [TransientError("vk", f"502 #{n}") for n in range(QUICK_ATTEMPTS)]
    platform = Platform(*errors)
    box = outbox(redis, max_backoff=0.5)
    with pytest.raises(TransientError, match=f"502 #{QUICK_ATTEMPTS - 1}"):
        await Outbox._call_any(box, [platform], DEST, platform.send)
    assert platform.calls == QUICK_ATTEMPTS
    assert sleeps == [0.2, 0.4, 0.5, 0.5]  # none after the last attempt
    assert retries_counted(box, "transient") == QUICK_ATTEMPTS


async def test_a_permanent_error_is_not_retried(redis: Redis, sleeps: list[float]) -> None:
    platform = Platform(PermanentError("vk", "blocked", reason="the customer blocked the bot"))
    with pytest.raises(PermanentError):
        await Outbox._call_any(outbox(redis), [platform], DEST, platform.send)
    assert platform.calls == 1
    assert sleeps == []
