"""``gateway export`` / ``gateway import``: a real gateway's data written out, restored
into a second, empty redis-server, compared key by key, and served again by a gateway
on the restored store — plus refusals (a target with data, malformed lines, a write
that fails halfway) and ``--since``. Real Redis servers, the real CLI in a subprocess."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
import yaml
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.config import parse_config
from gateway.export import Exporter, ImportRefused, validate, write
from gateway.export.families import Fate, fate
from gateway.store import keys
from gateway.store.redis import EmbeddedRedis
from tests.conftest import (
    CUSTOMER_TOKEN,
    STAFF_CHAT,
    Clock,
    Running,
    StartGateway,
    World,
    config_dict,
    eventually,
    free_port,
    own_redis_server,
    text_of,
)

MSK = ZoneInfo("Europe/Moscow")
SUPPORT_TOKEN = "1003:support-bot-token-cccccccccccccccccccc"


def _config(data: dict[str, Any]) -> None:
    """Two customer bots (two messengers of one person) and the name index on."""
    shop = data["channels"][0]
    data["channels"].append({**shop, "id": "tg_support", "token": SUPPORT_TOKEN})
    data["dedup"] = {"suggest_by_name": True}
    data["staff"]["idle_offline_minutes"] = 30


def _on(url: str) -> Callable[[dict[str, Any]], None]:
    def tweak(data: dict[str, Any]) -> None:
        _config(data)
        data["redis"]["url"] = url

    return tweak


def _config_file(tmp_path: Path, name: str, world: World, redis_url: str) -> Path:
    data = config_dict(world.emulator.base_url, redis_url)
    data["data_dir"] = str(tmp_path / "data")
    _config(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command, as an admin runs it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def second_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    """Another, empty redis-server: the target of a restore."""
    async with own_redis_server(tmp_path / "target-redis") as server:
        yield server


async def snapshot(url: str) -> dict[str, Any]:
    """Every key a restore must reproduce, with its value and whether it expires."""
    client = aioredis.Redis.from_url(url)
    found: dict[str, Any] = {}
    try:
        async for raw in client.scan_iter(match=f"{keys.PREFIX}:*", count=1000):
            key = raw.decode()
            kind = fate(key)
            assert kind is not None, f"{key}: no export decision for this family of keys"
            if kind is Fate.TRANSIENT:
                continue
            match (await client.type(key)).decode():
                case "string":
                    value: Any = await client.get(key)
                case "hash":
                    value = await client.hgetall(key)
                case "set":
                    value = sorted(await client.smembers(key))
                case "zset":
                    value = await client.zrange(key, 0, -1, withscores=True)
                case "list":
                    value = await client.lrange(key, 0, -1)
                case "stream":
                    value = await client.xrange(key)
                case other:
                    raise AssertionError(f"{key}: unexpected type {other}")
            found[key] = (value, await client.pttl(key) > 0)
    finally:
        await client.aclose()
    return found


def _differences(one: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The keys whose values differ, with both values (readable when a test fails)."""
    return [
        (key, one.get(key), other.get(key))
        for key in sorted({*one, *other})
        if one.get(key) != other.get(key)
    ]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _comparable(lines: list[dict[str, Any]]) -> tuple[list[str], list[int]]:
    """Lines without the export's own time, the expiry times apart (they are computed
    from each export's clock, so they may differ by the milliseconds between reads),
    and in a stable order (the message map is walked with SCAN)."""
    expiries: list[int] = []

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            if "expires_at" in value and value["expires_at"] is not None:
                expiries.append(value["expires_at"])
            return {k: strip(v) for k, v in value.items() if k not in ("expires_at", "exported_at")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    kept = [json.dumps(strip(line), sort_keys=True) for line in lines]
    return sorted(kept), sorted(expiries)


async def _settled(running: Running) -> None:
    async def idle() -> bool:
        depths = [await running.app.bus.depth(f) for f in keys.FAMILIES]
        return sum(depths) == 0

    await eventually(idle)


async def merged_on_two_bots(world: World, shop: dict[str, Any], support: dict[str, Any]) -> int:
    """``shop`` writes to the shop's bot, ``support`` to the support bot; an operator
    merges the second topic's contact into the first's (one person on two
    messengers). The first topic."""
    await world.say(shop, text="hello from the shop")
    first = (await world.in_staff(lambda m: text_of(m) == "hello from the shop"))[
        "message_thread_id"
    ]
    await world.emulator.user_sends(support["id"], bot_token=SUPPORT_TOKEN, text="from support")
    second = (await world.in_staff(lambda m: text_of(m) == "from support"))["message_thread_id"]
    assert "merged into this one" in await _command(
        world, first, f"/merge https://t.me/c/5550000001/{second}"
    )
    return int(first)


async def _command(world: World, thread: int, text: str) -> str:
    sent = await world.operator_says(thread, text=text)
    return text_of(await world.answer_to(sent))


async def test_round_trip_restores_a_working_gateway(
    world: World,
    start_gateway: StartGateway,
    redis_url: str,
    second_redis: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    running = await start_gateway(tweak=_config)
    ivan, ivan_p = world.customer("Ivan", "ivan"), world.customer("Ivan P.", "ivan_p")
    # The same person on two messengers: merged, with a phone and an e-mail.
    first = await merged_on_two_bots(world, ivan, ivan_p)
    assert "saved" in await _command(world, first, "/phone +79161234567")
    assert "saved" in await _command(world, first, "/email Ivan@Example.com")
    assert "online" in (await _command(world, first, "/online")).lower()
    maria = world.customer("Maria", "maria")
    await world.say(maria, text="is the shop open on Sunday?")
    third = (await world.in_staff(lambda m: text_of(m) == "is the shop open on Sunday?"))[
        "message_thread_id"
    ]
    await world.operator_says(third, text="yes, from ten")
    await world.in_private(maria, lambda m: text_of(m) == "yes, from ten")
    await _settled(running)
    await running.stop()

    source = _config_file(tmp_path, "source", world, redis_url)
    target = _config_file(tmp_path, "target", world, second_redis.url)
    exported, restored = tmp_path / "export.jsonl", tmp_path / "again.jsonl"
    done = _cli("export", "-c", str(source), "-o", str(exported))
    assert done.returncode == 0, done.stderr
    assert "3 contact" in done.stderr
    lines = _lines(exported)
    assert lines[0]["type"] == "header" and lines[-1] == {"type": "end", "lines": len(lines) - 1}
    merged = next(x for x in lines if x["type"] == "contact" and x["id"] == "2")
    assert merged["fields"]["merged_into"] == "1"
    (operator,) = [x for x in lines if x["type"] == "operator"]
    assert operator["presence"].startswith("online") and operator["idle_timer"] > 0
    messages = [x["fields"]["text"] for x in lines if x["type"] == "message"]
    assert {"hello from the shop", "from support", "yes, from ten"} <= set(messages)

    done = _cli("import", str(exported), "-c", str(target))
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout
    # Key by key the same: contacts, every index, processes, history, timers, counters.
    before = await snapshot(redis_url)
    assert _differences(before, await snapshot(second_redis.url)) == []
    # And the restored store exports to the same file.
    assert _cli("export", "-c", str(target), "-o", str(restored)).returncode == 0
    (kept, expiries), (again, later) = _comparable(lines), _comparable(_lines(restored))
    assert kept == again
    assert all(abs(a - b) < 5000 for a, b in zip(expiries, later, strict=True))

    # A restore goes into an empty Redis only: the source (and now the target) refuse.
    for config in (source, target):
        refused = _cli("import", str(exported), "-c", str(config))
        assert refused.returncode == 1
        assert "already holds gateway data" in refused.stderr, refused.stderr
    assert _differences(before, await snapshot(redis_url)) == []

    # A gateway on the restored store carries on where the first one stopped.
    numbers = {x["process"]["number"] for x in lines if x["type"] == "process"}
    topics = len(world.emulator.topics(STAFF_CHAT))
    restarted = await start_gateway(tweak=_on(second_redis.url))
    await world.say(ivan, text="back again")
    again_msg = await world.in_staff(lambda m: text_of(m).endswith("back again"))
    assert again_msg["message_thread_id"] == first
    await world.emulator.user_sends(ivan_p["id"], bot_token=SUPPORT_TOKEN, text="me too")
    too = await world.in_staff(lambda m: text_of(m).endswith("me too"))
    assert too["message_thread_id"] == first  # the merged identity still finds the person
    petr = world.customer("Petr", "petr")
    await world.say(petr, text="a new customer")
    new = await world.in_staff(lambda m: text_of(m) == "a new customer")
    assert new["message_thread_id"] not in (first, third)
    assert len(world.emulator.topics(STAFF_CHAT)) == topics + 1  # only Petr's is new
    assert await restarted.redis.get(keys.identity("tg_shop", str(petr["id"]))) == b"4"
    process = await restarted.app.processes.current("4")
    assert process is not None and process.number not in numbers
    await _settled(restarted)


def _valid_lines() -> list[dict[str, Any]]:
    """A small export, as the format documents it."""
    fields = {
        "dir": "in",
        "at": "2026-11-23T10:00:00+03:00",
        "channel": "telegram",
        "account": "tg_shop",
        "kind": "text",
        "text": "where is my order",
        "operator": "",
        "process": "",
        "task": "",
        "msg": "7",
        "file": "",
        "chat": "42",
    }
    return [
        {
            "type": "header",
            "format": "gateway-export",
            "schema": 1,
            "exported_at": "2026-11-24T00:00:00+00:00",
            "since": None,
            "prefix": "gw",
            "staff_chat": STAFF_CHAT,
        },
        {
            "type": "contact",
            "id": "1",
            "fields": {"display_name": "Ivan", "account": "tg_shop", "channel": "telegram"},
            "identities": ["tg_shop:42"],
            "lookups": {"identities": ["tg_shop:42"]},
        },
        {"type": "message", "contact": "1", "id": "1763881200000-0", "fields": fields},
        {"type": "raw", "key": "csat:pending:1", "kind": "set", "value": ["BP-1:1"]},
        {"type": "state", "contact_seq": 1, "timers": {"csat:1": 1795000000000}},
        {"type": "end", "lines": 5},
    ]


def _write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _changed(index: int, change: Callable[[dict[str, Any]], Any]) -> list[Any]:
    lines: list[Any] = _valid_lines()
    result = change(lines[index])
    if result is not None:
        lines[index] = result
    return lines


BAD_FILES: list[tuple[str, Callable[[], list[Any]], str]] = [
    ("bad JSON", lambda: _changed(2, lambda _: '{"type": "message", '), "line 3: not JSON"),
    ("a list", lambda: _changed(2, lambda _: "[1, 2]"), "line 3: not a JSON object"),
    (
        "unknown type",
        lambda: _changed(2, lambda x: x.update(type="gossip")),
        "line 3: unknown type 'gossip'",
    ),
    (
        "newer schema",
        lambda: _changed(0, lambda x: x.update(schema=2)),
        "line 1: schema version 2 is not supported (this gateway reads version 1)",
    ),
    ("no header", lambda: _valid_lines()[1:], "line 1: not a gateway export"),
    (
        "bad field",
        lambda: _changed(1, lambda x: x["fields"].update(display_name=5)),
        "line 2 (contact): fields.display_name: Input should be a valid string",
    ),
    (
        "missing history field",
        lambda: _changed(2, lambda x: x["fields"].pop("at") and None),
        "line 3 (message): fields: Value error, missing history fields ['at']",
    ),
    (
        "unknown contact",
        lambda: _changed(2, lambda x: x.update(contact="9")),
        "line 3: a message of contact 9, which no contact line before it introduces",
    ),
    (
        "lookup not its own",
        lambda: _changed(1, lambda x: x.update(lookups={"phones": ["+79161234567"]})),
        "line 2: contact 1 claims the lookup of +79161234567, which is not among its phones",
    ),
    (
        "raw of no known family",
        lambda: _changed(3, lambda x: x.update(key="secret:1")),
        "line 4 (raw): Value error, 'secret:1' is not of a family carried verbatim",
    ),
    (
        "raw of the wrong shape",
        lambda: _changed(3, lambda x: x.update(value="BP-1:1")),
        "line 4 (raw): Value error, the value of a set must be a list",
    ),
    (
        "wrong count",
        lambda: _changed(5, lambda x: x.update(lines=9)),
        "line 6: the end line counts 9 lines, the file has 5 before it",
    ),
    ("cut off", lambda: _valid_lines()[:-1], "the file ends at line 5 without its end line"),
    ("empty", lambda: [], "the file is empty"),
]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [(make, why) for _, make, why in BAD_FILES],
    ids=[n for n, *_ in BAD_FILES],
)
def test_malformed_files_are_refused_with_the_line(
    tmp_path: Path, lines: Callable[[], list[Any]], expected: str
) -> None:
    path = _write_lines(tmp_path / "bad.jsonl", lines())
    with pytest.raises(ImportRefused) as refused:
        validate(path)
    assert expected in str(refused.value)


def test_a_second_claim_of_one_identity_is_refused(tmp_path: Path) -> None:
    lines: list[Any] = _valid_lines()
    twin = {**lines[1], "id": "2"}
    lines[3:3] = [twin]
    lines[-1] = {"type": "end", "lines": 6}
    with pytest.raises(ImportRefused, match="line 4: tg_shop:42 resolves to contact 1 already"):
        validate(_write_lines(tmp_path / "twin.jsonl", lines))


async def test_refusals_leave_the_target_untouched(
    world: World, second_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    config = _config_file(tmp_path, "target", world, second_redis.url)
    good = _write_lines(tmp_path / "good.jsonl", _valid_lines())
    bad = _write_lines(tmp_path / "bad.jsonl", [*_valid_lines()[:-1], '{"type": "end", "lines"'])
    client = aioredis.Redis.from_url(second_redis.url)
    try:
        # The bad line is the last: nothing before it was written either.
        refused = await asyncio.to_thread(_cli, "import", str(bad), "-c", str(config))
        assert refused.returncode == 1
        assert "import refused" in refused.stderr and "line 6: not JSON" in refused.stderr
        assert await client.dbsize() == 0
        # A gateway holding a lease on it: refused until it is stopped.
        await client.set(keys.lease("in:0"), "replica-1", px=10_000)
        refused = await asyncio.to_thread(_cli, "import", str(good), "-c", str(config))
        assert refused.returncode == 1
        assert "a gateway is using this Redis (gw:lease:in:0)" in refused.stderr
        await client.delete(keys.lease("in:0"))
        # What a gateway that ran and received nothing leaves behind is no data.
        await client.xgroup_create(keys.stream(keys.INBOUND, 0), keys.GROUP, id="0", mkstream=True)
        done = await asyncio.to_thread(_cli, "import", str(good), "-c", str(config))
        assert done.returncode == 0, done.stderr
        assert await client.get(keys.identity("tg_shop", "42")) == b"1"
        assert await client.smembers(keys.word("order")) == {b"1"}
        assert await client.xlen(keys.history("1")) == 1
        assert await client.get(keys.CONTACT_SEQ) == b"1"
        assert await client.smembers(keys.csat_pending("1")) == {b"BP-1:1"}
    finally:
        await client.aclose()


async def test_the_embedded_redis_in_data_dir(world: World, tmp_path: Path) -> None:
    """Without redis.url: a running gateway's embedded server is used as it is; else
    the command starts the server in data_dir itself and stops it when done."""
    data = config_dict(world.emulator.base_url, "redis://unused")
    del data["redis"]
    data["data_dir"] = str(tmp_path / "data")
    config = tmp_path / "embedded.yaml"
    config.write_text(yaml.safe_dump(data))
    good = _write_lines(tmp_path / "good.jsonl", _valid_lines())
    live = EmbeddedRedis(tmp_path / "data" / "redis")  # as `gateway run` starts it
    live.start()
    try:
        await live.wait_ready()
        done = await asyncio.to_thread(_cli, "import", str(good), "-c", str(config))
        assert done.returncode == 0, done.stderr
        client = aioredis.Redis.from_url(live.url)
        assert await client.get(keys.identity("tg_shop", "42")) == b"1"  # still running
        await client.aclose()
    finally:
        live.stop()
    done = await asyncio.to_thread(_cli, "export", "-c", str(config))  # to stdout
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [x["id"] for x in lines if x["type"] == "contact"] == ["1"]
    assert lines[-1] == {"type": "end", "lines": len(lines) - 1}
    # What came in goes out again, other features' keys and timers included.
    assert [x for x in lines if x["type"] in ("raw", "state")] == _valid_lines()[3:5]
    client = aioredis.Redis.from_url(live.url)
    with pytest.raises((RedisConnectionError, OSError)):
        await client.ping()  # the server the command started is stopped again
    await client.aclose()


async def test_a_write_that_fails_halfway_leaves_the_target_empty(
    world: World, second_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    """Redis runs out of memory in the middle of the import: everything written is
    removed again, and once there is room the same file imports."""
    lines = _valid_lines()[:3]
    message = lines.pop()
    for i in range(3000):
        words = " ".join(f"w{i}x{j}" for j in range(30))
        fields = {**message["fields"], "text": words}
        lines.append({**message, "id": f"{1763881200000 + i}-0", "fields": fields})
    lines += [{"type": "state", "contact_seq": 1}, {"type": "end", "lines": len(lines) + 1}]
    path = _write_lines(tmp_path / "big.jsonl", lines)
    settings = parse_config(yaml.safe_dump(config_dict(world.emulator.base_url, second_redis.url)))
    plan = validate(path)
    client = aioredis.Redis.from_url(second_redis.url)
    try:
        used = int((await client.info("memory"))["used_memory"])
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", used + 1_000_000)
        with pytest.raises(ImportRefused, match="everything written was removed again") as failed:
            await write(client, settings, path, plan)
        assert "maxmemory" in str(failed.value)
        assert await client.dbsize() == 0
        await client.config_set("maxmemory", 0)
        await write(client, settings, path, plan)
        assert await client.xlen(keys.history("1")) == 3000
        assert await client.get(f"{keys.PREFIX}:import") is None
    finally:
        await client.aclose()


async def test_since_keeps_later_work_and_its_contacts(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 20, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock)
    ivan, maria = world.customer("Ivan", "ivan"), world.customer("Maria", "maria")
    await world.say(ivan, text="an old question")
    await world.in_staff(lambda m: text_of(m) == "an old question")
    await _settled(running)
    clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=MSK)
    await world.say(maria, text="a new question")
    await world.in_staff(lambda m: text_of(m) == "a new question")
    await _settled(running)
    assert running.redis is not None

    async def export(since: date | None) -> list[dict[str, Any]]:
        out = io.StringIO()
        await Exporter(running.redis, running.settings, out, since).run()
        return [json.loads(line) for line in out.getvalue().splitlines()]

    def of(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
        return [x for x in lines if x["type"] == kind]

    recent = await export(date(2026, 11, 23))
    assert recent[0]["since"] == "2026-11-23"
    assert [c["fields"]["display_name"] for c in of(recent, "contact")] == ["Maria"]
    assert [p["contact"] for p in of(recent, "process")] == ["2"]
    assert [m["fields"]["text"] for m in of(recent, "message")] == ["a new question"]
    assert of(recent, "state")[0]["contact_seq"] == 2  # the counters are always whole
    everything = await export(date(2026, 11, 20))
    assert len(of(everything, "contact")) == 2 and len(of(everything, "message")) == 2
    assert of(await export(date(2026, 11, 24)), "contact") == []
    assert CUSTOMER_TOKEN not in json.dumps(everything)


async def test_an_export_that_fails_leaves_no_file(world: World, tmp_path: Path) -> None:
    config = _config_file(tmp_path, "gone", world, f"redis://127.0.0.1:{free_port()}/0")
    out = tmp_path / "out.jsonl"
    failed = await asyncio.to_thread(_cli, "export", "-c", str(config), "-o", str(out))
    assert failed.returncode == 1
    assert "export failed" in failed.stderr and "127.0.0.1" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone.yaml"]  # no partial file
