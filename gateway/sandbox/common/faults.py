"""Injected failures and request-rate limits, the parts every emulator shares.

Reproducing a platform's failure modes is the point of the emulators: tests of the
gateway's retry logic queue one-shot faults (:class:`FaultQueue`, first queued, first
used; what a fault answers is the platform's business), switch on random faults at a
rate (:class:`RandomFaults`: each request fails with a probability, from a seeded
random generator, for chaos tests) and switch on a per-credential rate limit
(:class:`RateLimiter`).

Random faults are served the same way everywhere: the platform draws
(:meth:`RandomFaults.draw`) once it knows the request's target and whose it is; a
``delay`` holds the answer and a ``reset`` drops the connection
(:func:`delay_or_drop`); only the answer to a status kind ("429", "500", "502", "503")
is the platform's own. The console's ``POST /_control/fault_rate`` reads its body with
:func:`read_rate` and answers :func:`rates_view`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from .net import html_error


class _Countdown(Protocol):
    remaining: int


F = TypeVar("F", bound=_Countdown)


def check_http_error(status: int | None) -> None:
    """``ValueError`` unless ``status`` is ``None`` or an HTTP error status (4xx/5xx)."""
    if status is not None and not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status, got {status}")


class FaultQueue(Generic[F]):
    """A FIFO of faults, each good for its next ``remaining`` matching requests; a
    request no queued fault matches may still meet a random one (``random``)."""

    def __init__(self) -> None:
        self._queue: list[F] = []
        self.random = RandomFaults()
        """Faults at a rate; ``random.injected`` counts them by target and kind."""

    def push(self, fault: F) -> F:
        """Queue ``fault`` after the others."""
        self._queue.append(fault)
        return fault

    def take_first(self, matches: Callable[[F], bool]) -> F | None:
        """Use one turn of the oldest fault ``matches`` accepts; a used-up fault leaves."""
        for fault in self._queue:
            if matches(fault):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._queue.remove(fault)
                return fault
        return None

    def pending(self) -> list[F]:
        """Faults not used up yet, oldest first."""
        return list(self._queue)

    def clear(self) -> None:
        """Forget every queued fault."""
        self._queue.clear()


@dataclass
class Fault:
    """One queued failure of requests to ``target`` (an API method or endpoint; ``"*"``:
    any; names in ``<...>`` are special targets such as uploads, which ``"*"`` leaves
    alone)."""

    target: str
    remaining: int
    code: int | None = None
    """The platform's error code, answered the way the platform answers errors."""
    message: str | None = None
    """Its description (the platform's usual one when ``None``)."""
    status: int | None = None
    """An HTTP error status with a proxy's HTML page instead."""


FT = TypeVar("FT", bound=Fault)


class Faults(FaultQueue[FT]):
    """One-shot failures by target: platform errors and HTTP errors."""

    def add(self, fault: FT) -> None:
        """Queue a fault for its next ``remaining`` matching requests."""
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        check_http_error(fault.status)
        fault.target = fault.target.lower()
        self.push(fault)

    def take(self, target: str, *, http: bool) -> FT | None:
        """Use the oldest fault for ``target`` of the given kind (HTTP or platform error)."""
        target = target.lower()

        def matches(fault: FT) -> bool:
            if (fault.status is not None) != http:
                return False
            if fault.target == "*":
                return not target.startswith("<")
            return fault.target == target

        return self.take_first(matches)


RANDOM_KINDS = ("429", "500", "502", "503", "delay", "reset")
"""What a random fault may be: an HTTP status (429 "too many requests" with a
``retry_after``, 500/502/503 an incident), ``delay`` (the answer comes ``delay`` seconds
late, and the request still takes effect: past the client's timeout, the client sees a
timeout of a request that was done), ``reset`` (the connection is dropped before the
request is handled: nothing is done)."""


@dataclass(frozen=True)
class FaultRate:
    """Random faults: each matching request fails with ``probability``, as one of
    ``kinds`` (drawn uniformly)."""

    probability: float
    kinds: tuple[str, ...] = RANDOM_KINDS
    targets: frozenset[str] | None = None
    """Lower-cased methods or endpoints affected; ``None``: every one except the special
    targets in ``<...>`` (uploads)."""
    key: Hashable = None
    """Whose requests (a bot id, a token…); ``None``: everyone's."""
    retry_after: int = 1
    """Seconds a 429 asks the client to wait."""
    delay: float = 1.0
    """Seconds a ``delay`` fault holds the answer."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {self.probability}")
        if not self.kinds:
            raise ValueError("kinds must not be empty")
        unknown = [kind for kind in self.kinds if kind not in RANDOM_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {RANDOM_KINDS}")
        if self.retry_after < 1:
            raise ValueError("retry_after must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    def matches(self, target: str, key: Hashable) -> bool:
        """Whether a request to ``target`` (lower-cased) by ``key`` is subject to it."""
        if self.key is not None and self.key != key:
            return False
        if self.targets is None:
            return not target.startswith("<")
        return target in self.targets


@dataclass(frozen=True)
class Drawn:
    """A random fault that hit one request."""

    rate: FaultRate
    kind: str

    @property
    def status(self) -> int | None:
        """The HTTP status to answer with (``None`` for ``delay`` and ``reset``)."""
        return int(self.kind) if self.kind.isdigit() else None


class RandomFaults:
    """Faults at a rate: the first :class:`FaultRate` matching a request decides, with a
    seeded generator, whether it fails and how. ``injected`` counts what was drawn, by
    target and kind, so a test can bound what the faults may have caused."""

    def __init__(self, seed: int | None = 0) -> None:
        self._rates: list[FaultRate] = []
        self._rng = random.Random(seed)  # noqa: S311 - reproducible chaos, not crypto
        self.injected: Counter[tuple[str, str]] = Counter()
        self._released = asyncio.Event()

    def add(self, rate: FaultRate, *, seed: int | None = None) -> FaultRate:
        """Apply ``rate``, consulted before the rules added earlier; ``seed`` restarts
        the generator."""
        self._rates.insert(0, rate)
        if seed is not None:
            self._rng.seed(seed)
        return rate

    def set_rate(
        self,
        probability: float,
        *,
        targets: Iterable[str] | None = None,
        key: Hashable = None,
        kinds: Iterable[str] = RANDOM_KINDS,
        retry_after: int = 1,
        delay: float = 1.0,
        seed: int | None = None,
        known: Collection[str] | None = None,
        noun: str = "targets",
    ) -> FaultRate:
        """:meth:`add` a :class:`FaultRate` from plain arguments: ``targets`` (any case;
        ``None``: all) must be among ``known`` when given (``noun`` names them in the
        error: "methods", "endpoints")."""
        wanted: frozenset[str] | None = None
        if targets is not None:
            if isinstance(targets, str):
                raise TypeError(f"{noun} must be a list of names, not one string")
            wanted = frozenset(str(target).lower() for target in targets)
            if not wanted:
                raise ValueError(f"{noun} must not be empty (leave it out for all)")
            if known is not None:
                unknown = sorted(wanted - {name.lower() for name in known})
                if unknown:
                    raise ValueError(f"unknown {noun} {unknown}; known: {sorted(known)}")
        if isinstance(kinds, str):
            raise TypeError(f"kinds must be a list of kinds, not one string; known: {RANDOM_KINDS}")
        rate = FaultRate(
            probability=probability,
            kinds=tuple(kinds),
            targets=wanted,
            key=key,
            retry_after=retry_after,
            delay=delay,
        )
        return self.add(rate, seed=seed)

    async def hold(self, drawn: Drawn) -> None:
        """Sleep out a ``delay`` fault (no time for other kinds), cut short by
        :meth:`release`."""
        if drawn.kind == "delay" and drawn.rate.delay > 0 and not self._released.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), drawn.rate.delay)

    def release(self) -> None:
        """End the delays being held, and hold no more (the emulator is stopping)."""
        self._released.set()

    def rates(self) -> list[FaultRate]:
        """The rules in force, the one consulted first first."""
        return list(self._rates)

    def clear(self) -> None:
        """Stop random faults (the counts stay)."""
        self._rates.clear()

    def draw(self, target: str, key: Hashable = None) -> Drawn | None:
        """Decide the fate of one request to ``target`` by ``key``."""
        target = target.lower()
        for rate in self._rates:
            if rate.matches(target, key):
                if self._rng.random() >= rate.probability:
                    return None
                kind = self._rng.choice(rate.kinds)
                self.injected[(target, kind)] += 1
                return Drawn(rate, kind)
        return None

    def count(
        self, targets: Iterable[str] | None = None, kinds: Iterable[str] | None = None
    ) -> int:
        """How many faults were injected into ``targets`` (all when ``None``) of ``kinds``."""
        wanted = {t.lower() for t in targets} if targets is not None else None
        kinds_ = set(kinds) if kinds is not None else None
        return sum(
            n
            for (target, kind), n in self.injected.items()
            if (wanted is None or target in wanted) and (kinds_ is None or kind in kinds_)
        )


async def delay_or_drop(
    drawn: Drawn, request: web.Request, faults: RandomFaults
) -> web.StreamResponse | None:
    """Serve the kinds every platform serves alike: a ``delay`` holds the answer, then
    the request goes on and is done (``None``); a ``reset`` drops the connection before
    anything is done (the returned response never reaches the client). ``None`` for the
    status kinds too: what they answer is the platform's business."""
    await faults.hold(drawn)
    if drawn.kind != "reset":
        return None
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client: the connection is gone


async def serve_random(
    drawn: Drawn,
    request: web.Request,
    faults: RandomFaults,
    error_of: Callable[[int], Exception | None],
) -> web.StreamResponse | None:
    """Serve a random fault: ``None`` when the call goes on (late, for a delay); for a
    status kind, raises the platform's error object (``error_of``; the platform's API
    turns it into its answer) or, where the platform has none, answers an HTML page of
    that status (a proxy in front of the API)."""
    dropped = await delay_or_drop(drawn, request, faults)
    if dropped is not None or drawn.status is None:
        return dropped
    error = error_of(drawn.status)
    if error is not None:
        raise error
    return html_error(drawn.status)


class RandomFaulting:
    """Mixin of the facades with random faults (``faults.random``): stopping them and
    counting what they injected."""

    faults: Any

    def clear_fault_rates(self) -> None:
        """Stop random faults (what was injected stays counted)."""
        self.faults.random.clear()

    def injected_faults(
        self, targets: Iterable[str] | None = None, kinds: Iterable[str] | None = None
    ) -> int:
        """How many random faults hit calls of ``targets`` (the platform's methods or
        endpoints; all when ``None``), of ``kinds`` (all when ``None``)."""
        count: int = self.faults.random.count(targets, kinds)
        return count


@dataclass(frozen=True)
class RateRequest:
    """What a ``POST /_control/fault_rate`` body asks for (see :func:`read_rate`)."""

    probability: float
    targets: list[str] | None
    key: Any
    """The value of the platform's key field (``None``: not given)."""
    kinds: tuple[str, ...]
    retry_after: int
    delay: float
    seed: int | None


def _number(body: Mapping[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def _integer(body: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return value


def _names(body: Mapping[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"{name} must be a list of non-empty strings, got {value!r}")
    return value


def read_rate(
    body: Mapping[str, Any], *, targets: str, key: str, key_type: type[int] | type[str]
) -> RateRequest | None:
    """The rule a ``POST /_control/fault_rate`` body asks for — ``{probability,
    <targets>?, <key>?, kinds?, retry_after?, delay?, seed?}`` — or ``None`` for
    ``{"clear": true}``. ``targets`` and ``key`` name the platform's fields ("methods",
    "group_id"…), ``key_type`` is its key's JSON type. Anything else raises
    ``ValueError``/``TypeError`` saying what is wrong (the console's 400)."""
    allowed = {"probability", targets, key, "kinds", "retry_after", "delay", "seed"}
    if "clear" in body:
        if body["clear"] is not True:
            raise ValueError("clear must be true (leave it out to set a rate)")
        if len(body) > 1:
            raise ValueError(f"clear takes no other fields, got {sorted(set(body) - {'clear'})}")
        return None
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValueError(f"unknown fields {unknown}; known: {sorted(allowed | {'clear'})}")
    if "probability" not in body:
        raise ValueError("probability is required: a number within [0, 1]")
    owner = body.get(key)
    if owner is not None and (isinstance(owner, bool) or not isinstance(owner, key_type)):
        raise TypeError(f"{key} must be a{'n integer' if key_type is int else ' string'}")
    kinds = _names(body, "kinds")
    return RateRequest(
        probability=_number(body, "probability", 0.0),
        targets=_names(body, targets),
        key=owner,
        kinds=tuple(kinds) if kinds is not None else RANDOM_KINDS,
        retry_after=_integer(body, "retry_after", 1) or 0,
        delay=_number(body, "delay", 1.0),
        seed=_integer(body, "seed", None),
    )


def rates_view(
    faults: RandomFaults,
    *,
    targets: str,
    key: str,
    key_view: Callable[[Any], Any] = lambda key: key,
) -> dict[str, Any]:
    """The rules in force (the one consulted first first) and what was injected so far,
    for the console; ``targets``/``key`` name the platform's fields, ``key_view`` shows
    a key (a bot's public id instead of its token)."""
    by_kind: Counter[str] = Counter()
    for (_, kind), n in faults.injected.items():
        by_kind[kind] += n
    return {
        "rates": [
            {
                "probability": rate.probability,
                "kinds": list(rate.kinds),
                targets: sorted(rate.targets) if rate.targets is not None else None,
                key: key_view(rate.key) if rate.key is not None else None,
                "retry_after": rate.retry_after,
                "delay": rate.delay,
            }
            for rate in faults.rates()
        ],
        "injected": faults.count(),
        "injected_by_kind": dict(by_kind),
    }


class RateLimiter:
    """A token bucket per key (a token, a bot): ``limit`` requests a second, bursts of
    ``limit`` (at least one). ``limit`` ``None`` switches it off."""

    def __init__(self, limit: float | None = None) -> None:
        self._limit: float | None = None
        self.limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def limit(self) -> float | None:
        """Requests a second one key may make (``None``: no limit)."""
        return self._limit

    @limit.setter
    def limit(self, value: float | None) -> None:
        if value is not None and value <= 0:
            raise ValueError("a rate limit must be positive")
        self._limit = value

    def allow(self, key: str) -> bool:
        """Count one request of ``key``; ``False`` when it is over the limit (not counted)."""
        if self._limit is None:
            return True
        now = time.monotonic()
        capacity = max(1.0, self._limit)
        level, since = self._buckets.get(key, (capacity, now))
        level = min(capacity, level + (now - since) * self._limit)
        if level < 1.0:
            self._buckets[key] = (level, now)
            return False
        self._buckets[key] = (level - 1.0, now)
        return True


class RateLimited:
    """Mixin of the facades whose API has a per-credential request limit (``limiter``)."""

    limiter: RateLimiter

    @property
    def rate_limit(self) -> float | None:
        """Requests a second one token may make before the platform answers "too many
        requests" (``None``: no limit)."""
        return self.limiter.limit

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        self.limiter.limit = value
