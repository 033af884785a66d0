"""The admin dashboard, its statistics and the metrics behind it (issue 8), without a
browser: sign-in and sessions, the per-day aggregates built from the events stream
(counted once across replicas, crashes and redeliveries; days in the config's zone),
what the dashboard shows, and the gauges ``/metrics`` computes when scraped.
The headless-browser tests are in ``tests/browser/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from structlog.testing import capture_logs

from gateway import process as bp
from gateway.admin import events as ev
from gateway.admin.auth import COOKIE, SESSION_SECONDS, Sessions
from gateway.admin.chart import histogram
from gateway.admin.report import Counters, days_until, read_days
from gateway.admin.stats import StatsConsumer
from gateway.config import ApiSettings, ApiToken, Settings, parse_config
from gateway.metrics import Metrics
from gateway.process import Process, Status, Task
from gateway.store import keys
from gateway.store.events import record_event
from gateway.store.processes import PROCESS
from tests.conftest import (
    STAFF_CHAT,
    Clock,
    Running,
    StartGateway,
    World,
    config_dict,
    eventually,
    free_port,
    text_of,
)

MSK = ZoneInfo("Europe/Moscow")
ADMIN_TOKEN = "admin-token-0123456789abcdef"
READER_TOKEN = "reader-token-0123456789abcdef"
TOKENS = [
    {"name": "boss", "token": ADMIN_TOKEN, "scopes": ["read", "admin"]},
    {"name": "crm", "token": READER_TOKEN, "scopes": ["read", "write"]},
]


def with_tokens(data: dict[str, Any]) -> None:
    data["api"] = {"tokens": TOKENS}


def settings_for(redis_url: str) -> Settings:
    data = config_dict("http://127.0.0.1:9", redis_url)
    with_tokens(data)
    return parse_config(yaml.safe_dump(data))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies set by an IP-address host (the gateway on 127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def add_event(
    redis: aioredis.Redis,
    kind: str,
    at: datetime,
    contact: str = "c1",
    process: str = "BP-1",
    task: int = 1,
    **data: str,
) -> str:
    """Append an event as the gateway records it (``record_event``); its entry id."""
    async with redis.pipeline(transaction=True) as pipe:
        record_event(pipe, contact, bp.Event(kind, at, process, task, "customer", data))
        (entry_id,) = await pipe.execute()
    return entry_id.decode()


def consumer(redis: aioredis.Redis, settings: Settings, name: str, **kw: Any) -> StatsConsumer:
    return StatsConsumer(redis, settings, Metrics(), name=name, block_ms=50, **kw)


async def day(redis: aioredis.Redis, when: datetime) -> Counters:
    (found,) = await read_days(redis, [ev.local_day(when, MSK)])
    return found.counters


async def pending(redis: aioredis.Redis) -> int:
    return int((await redis.xpending(keys.EVENTS, ev.GROUP))["pending"])


# --- sign-in ------------------------------------------------------------------------------


async def sign_in(http: aiohttp.ClientSession, url: str, token: str = ADMIN_TOKEN) -> Any:
    return await http.post(f"{url}/admin/login", data={"token": token}, allow_redirects=False)


async def test_the_dashboard_needs_a_signed_in_admin(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(tweak=with_tokens)
    async with http.get(f"{gw.url}/admin", allow_redirects=False) as page:
        assert page.status == 303 and page.headers["Location"] == "/admin/login"
    async with http.get(f"{gw.url}/admin/live") as live:
        assert live.status == 401
    async with http.get(f"{gw.url}/admin/login") as form:
        assert form.status == 200 and 'name="token"' in await form.text()
        assert "script-src 'self'" in form.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in form.headers["Content-Security-Policy"]
    async with http.get(f"{gw.url}/admin/static/admin.js") as script:
        assert script.status == 200 and script.content_type == "text/javascript"
    async with http.get(f"{gw.url}/admin/static/..%2Fauth.py") as escape:
        assert escape.status == 404
    # Logging out without a session changes nothing and lands on the form.
    async with http.post(f"{gw.url}/admin/logout", allow_redirects=False) as out:
        assert out.status == 303 and out.headers["Location"] == "/admin/login"


async def test_a_wrong_token_is_refused_and_never_logged(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(tweak=with_tokens)
    wrong = "not-the-token-0123456789abcdef"
    with capture_logs() as logs:
        for attempt in (wrong, "", "x" * 5000, ADMIN_TOKEN[:-1]):
            async with await sign_in(http, gw.url, attempt) as refused:
                assert refused.status == 401, attempt[:10]
                assert "Wrong token." in await refused.text()
                assert COOKIE not in refused.cookies
    refusals = [e for e in logs if e["event"] == "admin.login_refused"]
    assert len(refusals) == 4 and all(e["reason"] == "unknown token" for e in refusals)
    assert wrong not in repr(logs) and ADMIN_TOKEN[:-1] not in repr(logs)
    async with http.get(f"{gw.url}/admin", allow_redirects=False) as page:
        assert page.status == 303


async def test_a_token_without_the_admin_scope_is_refused(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(tweak=with_tokens)
    async with await sign_in(http, gw.url, READER_TOKEN) as refused:
        assert refused.status == 403
        assert "has no admin scope" in await refused.text()
        assert COOKIE not in refused.cookies
    async with http.get(f"{gw.url}/admin/live") as live:
        assert live.status == 401


async def test_without_an_admin_token_the_form_says_how_to_add_one(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway()  # no api.tokens at all
    async with http.get(f"{gw.url}/admin/login") as form:
        assert "No API token has the <code>admin</code> scope" in await form.text()
    async with await sign_in(http, gw.url) as refused:
        assert refused.status == 401


async def test_sign_in_sets_a_strict_session_and_logout_needs_the_form_token(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(tweak=with_tokens)
    async with await sign_in(http, gw.url) as signed:
        assert signed.status == 303 and signed.headers["Location"] == "/admin"
        header = signed.headers["Set-Cookie"]
    assert ADMIN_TOKEN not in header
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/admin", f"Max-Age={SESSION_SECONDS}"):
        assert flag in header, header
    async with http.get(f"{gw.url}/admin") as page:
        body = await page.text()
        assert page.status == 200 and 'id="admin-name">boss<' in body
        assert page.headers["Cache-Control"] == "no-store"
    csrf = body.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    for asked, every in (("", "5"), ("2", "2"), ("0", "1"), ("99999", "300"), ("-1", "5")):
        async with http.get(f"{gw.url}/admin", params={"refresh": asked}) as page:
            assert f'data-refresh="{every}"' in await page.text(), asked
    # A stale or forged form, or a post from another site, does not sign anyone out.
    for data, headers in (
        ({"csrf": "0" * 64}, {}),
        ({}, {}),
        ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        async with http.post(
            f"{gw.url}/admin/logout", data=data, headers=headers, allow_redirects=False
        ) as refused:
            assert refused.status == 403
    async with http.get(f"{gw.url}/admin/live") as still:
        assert still.status == 200
    async with http.post(
        f"{gw.url}/admin/logout", data={"csrf": csrf}, allow_redirects=False
    ) as out:
        assert out.status == 303 and out.headers["Location"] == "/admin/login"
        assert out.cookies[COOKIE].value == ""
    async with http.get(f"{gw.url}/admin/live") as gone:
        assert gone.status == 401
    # A login form posted from another site is refused before the token is looked at.
    async with http.post(
        f"{gw.url}/admin/login",
        data={"token": ADMIN_TOKEN},
        headers={"Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
    ) as cross:
        assert cross.status == 403 and COOKIE not in cross.cookies


def test_sessions_are_signed_expire_and_end_when_the_tokens_change(redis_url: str) -> None:
    settings = settings_for(redis_url)
    sessions = Sessions(settings.api.tokens)
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    cookie = sessions.issue("boss", now)
    assert sessions.verify(cookie, now) == "boss"
    assert sessions.verify(cookie, now + timedelta(seconds=SESSION_SECONDS - 1)) == "boss"
    assert sessions.verify(cookie, now + timedelta(seconds=SESSION_SECONDS)) is None
    name, expires, nonce, signature = cookie.split(".")
    other = "0" if signature[-1] != "0" else "1"
    forged = {
        f"{name}.{int(expires) + 3600}.{nonce}.{signature}",  # a longer session
        f"crm.{expires}.{nonce}.{signature}",  # another client
        f"{name}.{expires}.{nonce}.{signature[:-1]}{other}",
        f"{name}.{expires}.{signature}",
        "",
        "." * 3,
        "x" * 1000,
        f"{name}.-5.{nonce}.{signature}",
    }
    assert all(sessions.verify(f, now) is None for f in forged)
    # A session of a non-admin client cannot be made either: its name is not an admin.
    assert sessions.verify(sessions.issue("crm", now), now) is None
    # Rotating any token (here the other client's) ends every session.
    rotated = [dict(t) for t in TOKENS]
    rotated[1]["token"] = "rotated-token-0123456789abcdef"
    data = config_dict("http://127.0.0.1:9", redis_url)
    data["api"] = {"tokens": rotated}
    assert Sessions(parse_config(yaml.safe_dump(data)).api.tokens).verify(cookie, now) is None
    assert sessions.csrf_ok(cookie, sessions.csrf(cookie))
    assert not sessions.csrf_ok(cookie, sessions.csrf(sessions.issue("boss", now)))


# --- statistics -----------------------------------------------------------------------------


async def test_each_event_counts_once_even_when_redelivered(
    redis: aioredis.Redis, redis_url: str
) -> None:
    settings = settings_for(redis_url)
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    stats = consumer(redis, settings, "replica-a")
    await stats.ensure_group()
    await add_event(redis, "message.inbound", at, channel="telegram", account="tg_shop")
    await add_event(
        redis, "task.updated", at, first_response_seconds="200", answered="true", contact="c2"
    )
    await add_event(redis, "task.rated", at, rating="4")
    await add_event(redis, "task.rated", at, rating="none")
    await add_event(redis, "process.renamed", at, title="x")  # counts for nothing
    assert await stats.read_once() == 5
    counted = await day(redis, at)
    assert counted.values == {
        "in:channel:telegram": 1,
        "in:account:tg_shop": 1,
        "frt:300": 1,
        "frt_sum": 200,
        "frt_n": 1,
        "csat:4": 1,
        "csat_sum": 4,
        "csat_n": 1,
        "csat_none": 1,
    }
    assert await pending(redis) == 0
    # The same entries handled again — a stalled replica waking up after another one
    # claimed and counted them, or a reply lost after the script ran — add nothing.
    for entry_id, fields in await redis.xrange(keys.EVENTS):
        assert await stats.handle(entry_id.decode(), fields) is False
    assert (await day(redis, at)).values == counted.values
    assert await redis.ttl(ev.day_key(ev.local_day(at, MSK))) > 300 * 86400
    assert 0 < await redis.ttl(ev.seen_key(ev.local_day(at, MSK))) <= ev.SEEN_TTL_SECONDS


async def test_a_replica_that_died_with_entries_read_is_taken_over(
    redis: aioredis.Redis, redis_url: str
) -> None:
    settings = settings_for(redis_url)
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    dead = consumer(redis, settings, "replica-dead")
    await dead.ensure_group()
    for n in range(3):
        await add_event(redis, "message.inbound", at, channel="vk", account=f"vk{n}")
    # It read them (they are pending with it) and was killed before counting any.
    read = await redis.xreadgroup(ev.GROUP, "replica-dead", {keys.EVENTS: ">"}, count=10)
    assert len(read[0][1]) == 3 and await pending(redis) == 3
    alive = consumer(redis, settings, "replica-alive", claim_idle_seconds=0.05)
    assert await alive.claim_stale() == 0  # not idle long enough yet: maybe still working
    await asyncio.sleep(0.1)
    assert await alive.claim_stale() == 3
    assert (await day(redis, at)).get("in:channel:vk") == 3 and await pending(redis) == 0
    # The "dead" one was only stalled: finishing its old batch now counts nothing twice.
    for entry_id, fields in read[0][1]:
        assert await dead.handle(entry_id.decode(), fields) is False
    assert (await day(redis, at)).get("in:channel:vk") == 3


async def test_replicas_share_the_stream_and_count_every_event_once(
    redis: aioredis.Redis, redis_url: str
) -> None:
    settings = settings_for(redis_url)
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    replicas = [consumer(redis, settings, f"replica-{n}", batch=7) for n in range(3)]
    await replicas[0].ensure_group()
    tasks = [asyncio.create_task(r.run()) for r in replicas]
    try:
        for n in range(300):
            channel = ("telegram", "vk", "viber")[n % 3]
            await add_event(
                redis, "message.inbound", at, contact=f"c{n}", channel=channel, account=channel
            )
        await eventually(lambda: _inbound(redis, at, 300), timeout=15)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    counted = await day(redis, at)
    assert counted.by("in:channel:") == {"telegram": 100, "vk": 100, "viber": 100}
    assert await pending(redis) == 0
    assert sum(1 for r in replicas if r.alive_at) == 3


async def _inbound(redis: aioredis.Redis, at: datetime, expected: int) -> bool:
    return (await day(redis, at)).inbound == expected and await pending(redis) == 0


async def test_days_are_counted_in_the_configured_time_zone(
    redis: aioredis.Redis, redis_url: str
) -> None:
    settings = settings_for(redis_url)  # Europe/Moscow: UTC+3
    stats = consumer(redis, settings, "replica-a")
    await stats.ensure_group()
    before = datetime(2026, 11, 23, 20, 59, 59, tzinfo=UTC)  # 23:59:59 in Moscow
    after = datetime(2026, 11, 23, 21, 0, 0, tzinfo=UTC)  # 00:00:00 on the 24th
    for at in (before, after, after):
        await add_event(redis, "message.inbound", at, channel="telegram", account="tg_shop")
    await add_event(redis, "task.opened", before)
    await add_event(redis, "task.opened", after, carried_from="BP-0")  # a continuation
    await stats.read_once()
    found = await read_days(redis, days_until(after, MSK, 3))
    assert [d.day.isoformat() for d in found] == ["2026-11-22", "2026-11-23", "2026-11-24"]
    assert [d.counters.inbound for d in found] == [0, 1, 2]
    assert [d.counters.get("opened") for d in found] == [0, 1, 0]
    # "Today" follows the zone too: 23:30 UTC is already the 24th in Moscow.
    assert days_until(datetime(2026, 11, 23, 23, 30, tzinfo=UTC), MSK, 1)[0].day == 24


async def test_malformed_events_are_skipped_without_holding_the_rest_back(
    redis: aioredis.Redis, redis_url: str
) -> None:
    settings = settings_for(redis_url)
    metrics = Metrics()
    stats = StatsConsumer(redis, settings, metrics, name="replica-a", block_ms=50)
    await stats.ensure_group()
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    await redis.xadd(keys.EVENTS, {"type": "message.inbound", "at": "yesterday", "data": "{}"})
    await redis.xadd(keys.EVENTS, {"type": "task.rated", "at": at.isoformat(), "data": "[1]"})
    await add_event(redis, "task.rated", at, rating="11")
    await add_event(redis, "message.inbound", at, channel="telegram")  # no account
    await add_event(redis, "task.updated", at, first_response_seconds="NaN")
    await add_event(redis, "message.inbound", at, channel="telegram", account="tg_shop")
    with capture_logs() as logs:
        assert await stats.read_once() == 6
    assert sum(e["event"] == "stats.malformed_event" for e in logs) == 5
    assert (await day(redis, at)).values == {"in:channel:telegram": 1, "in:account:tg_shop": 1}
    assert await pending(redis) == 0
    assert metrics.stats_skipped.labels("malformed")._value.get() == 5


async def test_resolution_time_is_read_from_the_closed_task(
    redis: aioredis.Redis, redis_url: str
) -> None:
    settings = settings_for(redis_url)
    metrics = Metrics()
    stats = StatsConsumer(redis, settings, metrics, name="replica-a", block_ms=50)
    await stats.ensure_group()
    opened = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    closed = opened + timedelta(minutes=50)
    task = Task(1, Status.CLOSED, opened, opened, False, closed_at=closed)
    process = Process("BP-7", opened.date(), opened, (task,))
    await redis.set(keys.process("c7"), PROCESS.dump_json(process))
    await redis.hset(keys.contact("c7"), mapping={"account": "tg_shop"})
    await add_event(redis, "task.closed", closed, contact="c7", process="BP-7", reason="done")
    await add_event(redis, "task.closed", closed, contact="c7", process="BP-9")  # not found
    await add_event(redis, "task.closed", closed, contact="c7", reason="carried_over")
    await stats.read_once()
    counted = await day(redis, closed)
    assert counted.get("closed") == 2  # the carried-over task is not a resolution
    assert (counted.get("res_sum"), counted.get("res_n")) == (3000, 1)
    assert metrics.resolution.labels("tg_shop")._sum.get() == 3000


# --- the dashboard and the metrics of a running gateway ------------------------------------


async def test_the_dashboard_and_metrics_follow_a_customer_and_an_answer(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    gw = await start_gateway(tweak=with_tokens, clock=clock)
    online = await world.emulator.user_sends(
        world.operator["id"], chat_id=STAFF_CHAT, text="/online"
    )
    await world.answer_to(online)
    ivan = world.customer("Ivan <b>Petrov</b>", "ivan")
    await world.say(ivan, text="where is my order?")
    said = await world.in_staff(lambda m: text_of(m) == "where is my order?")
    thread = said["message_thread_id"]
    async with await sign_in(http, gw.url):
        pass

    async def live() -> str:
        async with http.get(f"{gw.url}/admin/live") as response:
            assert response.status == 200
            return await response.text()

    await eventually(lambda: _shows(live, 'id="inbound-today">1<'))
    page = await live()
    assert "Ivan &lt;b&gt;Petrov&lt;/b&gt;" in page  # a customer's name is text, never markup
    assert '<tr data-channel="telegram"><th scope="row">telegram</th>' in page
    assert f'href="https://t.me/c/5550000001/{thread}"' in page  # their topic, one click away
    assert 'id="queue-total">1<' in page  # Anna is online, but the task is new: not hers

    clock.now += timedelta(minutes=20)  # past the 15-minute first-response deadline
    await eventually(lambda: _shows(live, 'id="overdue-total">1<'))
    metrics = await _metrics(http, gw)
    assert metrics[("gateway_overdue_tasks", ())] == 1
    assert metrics[("gateway_open_tasks", (("status", "new"),))] == 1

    await world.operator_says(thread, text="On its way!")
    await world.emulator.wait_for(lambda m: text_of(m) == "On its way!", chat_id=ivan["id"])
    await eventually(lambda: _shows(live, 'id="frt-today">20 min<'))
    page = await live()
    assert 'id="overdue-total">0<' in page and 'id="queue-empty"' in page
    assert '<td class="load">1 / 5</td>' in page  # Anna took it by answering
    metrics = await _metrics(http, gw)
    assert metrics[("gateway_first_response_seconds_count", (("account", "tg_shop"),))] == 1
    assert metrics[("gateway_first_response_seconds_sum", (("account", "tg_shop"),))] == 1200
    assert metrics[("gateway_open_tasks", (("status", "in_work"),))] == 1
    assert metrics[("gateway_open_tasks", (("status", "new"),))] == 0
    assert metrics[("gateway_overdue_tasks", ())] == 0
    anna = (("name", "Anna"), ("operator", str(world.operator["id"])))
    assert metrics[("gateway_operator_load", anna)] == 1
    assert metrics[("gateway_operator_online", anna)] == 1
    assert metrics[("gateway_operator_capacity", anna)] == 5


async def _shows(live: Any, needle: str) -> bool:
    return needle in await live()


async def _metrics(
    http: aiohttp.ClientSession, gw: Running
) -> dict[tuple[str, tuple[Any, ...]], float]:
    async with http.get(f"{gw.url}/metrics") as response:
        body = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


async def test_the_dashboard_shows_a_week_of_statistics(
    start_gateway: StartGateway, http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)
    gw = await start_gateway(tweak=with_tokens, clock=Clock(now))
    events: list[tuple[str, datetime, dict[str, str]]] = []
    for back, count in ((0, 3), (1, 2), (6, 1), (7, 5)):  # 7 days ago is outside the week
        for n in range(count):
            data = {"channel": ("telegram", "whatsapp")[n % 2], "account": "a"}
            events.append(("message.inbound", now - timedelta(days=back), data))
    for waited in ("20", "600", "100000"):
        events.append(("task.updated", now, {"first_response_seconds": waited}))
    events.append(("task.updated", now - timedelta(days=2), {"first_response_seconds": "40"}))
    for rating in ("5", "4", "none"):
        events.append(("task.rated", now, {"rating": rating}))
    events.append(("task.rated", now - timedelta(days=3), {"rating": "1"}))
    for kind, at, data in events:
        await add_event(redis, kind, at, **data)
    async with await sign_in(http, gw.url):
        pass

    async def page() -> str:
        async with http.get(f"{gw.url}/admin") as response:
            return await response.text()

    # The statistics consumer counts the events one by one: wait for the last of them
    # (the rating three days ago makes the week's average 3.3 of 3).
    shown = ('id="inbound-today">3<', 'id="frt-today">9 h 19 min<', '<td class="avg">3.3</td>')
    for needle in shown:
        await eventually(lambda needle=needle: _shows(page, needle))
    body = await page()
    rows = {
        row.split('"', 1)[0]: [c.split("<", 1)[0] for c in row.split("<td")[1:]]
        for row in body.split('<tr data-channel="')[1:]
    }
    cells = [c.removeprefix(' class="today">').removeprefix(">") for c in rows["telegram"]]
    assert cells[:7] == ["1", "0", "0", "0", "0", "1", "2"] and cells[7].endswith(">4")
    assert 'id="frt-today">9 h 19 min<' in body  # (20 + 600 + 100000) / 3 seconds
    assert 'id="csat-today">4.5<' in body
    csat = body.split('id="csat"', 1)[1]
    assert '<td class="avg">4.5</td><td>2</td>' in csat  # today: 5 and 4; "none" is apart
    assert '<td class="avg">3.3</td><td>3</td>' in csat  # the week: 5, 4 and 1
    assert body.count('<rect class="series-0"') == 11  # one bar per bucket and series
    frt = body.split('id="frt"', 1)[1].split("</table>", 1)[0]
    assert "<td>1</td><td>0</td><td>0</td><td>1</td>" in frt  # ≤30 s, ≤1 min, ≤5 min, ≤15 min


def test_the_histogram_compares_shares_not_counts() -> None:
    today = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    week = [0, 10, 30, 0, 0, 0, 0, 0, 0, 0, 0]
    chart = histogram(today, week)
    tallest = max(b.height for g in chart.groups for b in g.bars)
    heights = {(b.series, n): b.height for n, g in enumerate(chart.groups) for b in g.bars}
    assert heights[(0, 1)] == heights[(0, 10)] < tallest  # 50 % and 50 % of today
    assert heights[(1, 2)] == tallest and heights[(1, 1)] == pytest.approx(tallest / 3, abs=0.2)
    assert not chart.empty and histogram([0] * 11, [0] * 11).empty


async def test_scraped_gauges_read_the_status_of_each_open_task(
    start_gateway: StartGateway, http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)
    gw = await start_gateway(tweak=with_tokens, clock=Clock(now))
    tasks = {
        "c1": Task(1, Status.NEW, now, now + timedelta(minutes=5), True),
        "c2": Task(1, Status.IN_WORK, now, now - timedelta(minutes=5), True, responsible="7"),
        "c3": Task(1, Status.RETURNED, now, now, False, responsible="7", transferred_to="8"),
        "c4": Task(1, Status.CLOSED, now, now, False),  # a stale index entry: not open
    }
    for contact_id, task in tasks.items():
        # A title that looks like a status must not be taken for one.
        title = 'x","status":"closed' if contact_id == "c1" else None
        process = Process(f"BP-{contact_id}", now.date(), now, (task,), title=title)
        await redis.set(keys.process(contact_id), PROCESS.dump_json(process))
        if task.awaiting_reply or task.status is Status.CLOSED:
            await redis.zadd(keys.AWAITING, {contact_id: int(task.respond_by.timestamp() * 1000)})
        if task.responsible:
            await redis.zadd(keys.OWNED, {contact_id: int(task.transferred_to or task.responsible)})
    await redis.zadd(keys.AWAITING, {"ghost": 0})  # an index entry without a process
    metrics = await _metrics(http, gw)
    statuses = {
        dict(labels)["status"]: value
        for (name, labels), value in metrics.items()
        if name == "gateway_open_tasks"
    }
    assert statuses == {"new": 1, "in_work": 1, "returned": 1}
    assert metrics[("gateway_open_tasks_truncated", ())] == 0
    # Overdue: c2 (deadline passed) and the ghost; c1's deadline is ahead.
    assert metrics[("gateway_overdue_tasks", ())] == 2


async def test_metrics_still_answer_while_redis_is_away(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(tweak=with_tokens)
    live = gw.app.redis
    gw.app.redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nobody there
    with capture_logs() as logs:
        async with http.get(f"{gw.url}/metrics") as response:
            assert response.status == 200
            assert "gateway_inbound_total" in await response.text()
    assert any(e["event"] == "metrics.gauges_unavailable" for e in logs)
    async with await sign_in(http, gw.url):
        pass
    async with http.get(f"{gw.url}/admin") as page:
        assert page.status == 503 and "Redis is unavailable" in await page.text()
    await gw.app.redis.aclose()
    gw.app.redis = live  # Redis is back: so is the page
    async with http.get(f"{gw.url}/admin") as page:
        assert page.status == 200


async def test_a_config_reload_that_rotates_a_token_ends_its_sessions(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(tweak=with_tokens)
    async with await sign_in(http, gw.url):
        pass
    async with http.get(f"{gw.url}/admin/live") as live:
        assert live.status == 200
    fresh = "fresh-admin-token-0123456789abcdef"
    tokens = (ApiToken(name="boss", token=SecretStr(fresh), scopes=("admin",)),)
    # What a reload (SIGHUP) does: the running gateway gets the new settings.
    gw.app.settings = gw.settings.model_copy(update={"api": ApiSettings(tokens=tokens)})
    async with http.get(f"{gw.url}/admin/live") as ended:
        assert ended.status == 401
    async with await sign_in(http, gw.url) as old:
        assert old.status == 401
    async with await sign_in(http, gw.url, fresh) as new:
        assert new.status == 303
    async with http.get(f"{gw.url}/admin/live") as live:
        assert live.status == 200
