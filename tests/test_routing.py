"""Routing new tasks (issue 6): round robin and least busy among online operators with
room, a fixed responsible, broadcast, and config validation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from gateway import process as bp
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.staff.presence import Presence
from tests.conftest import STAFF_CHAT, StartGateway, World, text_of

BORIS, VERA = 700002, 700003


def team(strategy: str, anna_max: int = 5) -> Any:
    def tweak(data: dict[str, Any]) -> None:
        data["staff"]["operators"] = [
            {"id": 700001, "name": "Anna", "roles": ["sales"], "max_chats": anna_max},
            {"id": BORIS, "name": "Boris", "roles": ["sales"]},
            {"id": VERA, "name": "Vera", "roles": ["service"]},
        ]
        data["channels"][0]["responsible"] = {"role": "sales", "strategy": strategy}

    return tweak


async def new_task(world: World, name: str) -> str:
    """A new customer writes; the routing notice in their topic."""
    customer = world.customer(name, name.lower())
    await world.say(customer, text=f"hello from {name}")
    said = await world.in_staff(lambda m: text_of(m) == f"hello from {name}")
    topic = said["message_thread_id"]
    notice = await world.in_staff(
        lambda m: m.get("message_thread_id") == topic and text_of(m).startswith(("📌", "📣"))
    )
    return text_of(notice)


async def test_round_robin_among_online_operators_with_room(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway(tweak=team("round_robin", anna_max=2))
    presence = Presence(running.redis, running.settings)
    now = datetime.now(UTC)
    online = await world.emulator.user_sends(
        world.operator["id"], chat_id=STAFF_CHAT, text="/online"
    )
    assert text_of(await world.answer_to(online)) == "Anna is online (0 open task(s))."
    await presence.set(str(BORIS), True, now)
    await presence.set(str(VERA), True, now)  # online, but not in sales

    got = [await new_task(world, name) for name in ("Ivan", "Maria", "Oleg", "Nina")]
    notice = next(m for m in world.staff_messages() if text_of(m) == "📌 Assigned to Boris.")
    # The assignee is mentioned: Telegram notifies them.
    assert [(e["type"], e["user"]["id"]) for e in notice["entities"]] == [("text_mention", BORIS)]
    assert got == [
        "📌 Assigned to Anna.",
        "📌 Assigned to Boris.",
        "📌 Assigned to Anna.",
        "📌 Assigned to Boris.",  # Anna is at capacity (2): her turn is skipped
    ]
    await presence.set(str(BORIS), False, now)
    # Anna is full and Boris away: nobody is assigned; the task waits for whoever takes it.
    customer = world.customer("Lev", "lev")
    await world.say(customer, text="hello from Lev")
    await world.in_staff(lambda m: text_of(m) == "hello from Lev")
    status = text_of(
        await world.answer_to(
            await world.emulator.user_sends(
                world.operator["id"], chat_id=STAFF_CHAT, text="/status"
            )
        )
    )
    assert "Anna: online" in status and "tasks 2/2 · at capacity" in status
    assert "⚪️ Boris: offline" in status and "tasks 2/5" in status


async def test_least_busy_and_broadcast(world: World, start_gateway: StartGateway) -> None:
    running = await start_gateway(tweak=team("least_busy"))
    presence = Presence(running.redis, running.settings)
    now = datetime.now(UTC)
    await presence.set("700001", True, now)
    assert await new_task(world, "Ivan") == "📌 Assigned to Anna."  # both 0: the first
    await presence.set(str(BORIS), True, now)
    assert await new_task(world, "Maria") == "📌 Assigned to Boris."  # Anna has 1
    assert await new_task(world, "Oleg") == "📌 Assigned to Anna."  # 1 and 1: the first


async def test_broadcast_names_everyone_available(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway(tweak=team("broadcast"))
    presence = Presence(running.redis, running.settings)
    for operator in ("700001", str(BORIS)):
        await presence.set(operator, True, datetime.now(UTC))
    notice = await new_task(world, "Ivan")
    assert notice == "📣 New task for sales: Anna, Boris — the first to /take it owns it."


def test_every_reference_is_checked_with_its_yaml_path() -> None:
    base = {
        "staff": {
            "token": "1:a",
            "chat_id": -1001,
            "operators": [{"id": 1, "name": "A", "roles": ["sales"]}],
        },
        "channels": [{"id": "tg_shop", "kind": "telegram", "token": "2:b"}],
    }
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"channels.0.responsible": {"operator": 2}}, "channels[0].responsible.operator", "2 is"),
        ({"channels.0.responsible": {"role": "sale"}}, "channels[0].responsible.role", "'sale'"),
        (
            {"channels.0.responsible": {"operator": 1, "role": "sales"}},
            "channels[0].responsible",
            "one of",
        ),
        ({"channels.0.department": "shop"}, "channels[0].department", "no department"),
        ({"staff.operators.0.department": "x"}, "staff.operators[0].department", "'x'"),
        # Declared roles catch a typo in an operator's roles, too.
        (
            {"staff.roles": [{"name": "sales"}], "staff.operators.0.roles": ["sales", "servce"]},
            "staff.operators[0].roles[1]",
            "no role 'servce' (staff.roles)",
        ),
        (
            {
                "staff.roles": [{"name": "sales"}, {"name": "vip"}],
                "channels.0.responsible": {"role": "vip"},
            },
            "channels[0].responsible.role",
            "no operator has the role 'vip'",
        ),
        (
            {"staff.departments": [{"name": "shop", "head": 9}]},
            "staff.departments[0].head",
            "9 is not in staff.operators",
        ),
        (
            {"staff.departments": [{"name": "shop"}, {"name": "shop"}]},
            "staff.departments[1]",
            "defined twice",
        ),
    ]
    for changes, path, words in cases:
        data = yaml.safe_load(yaml.safe_dump(base))
        for dotted, value in changes.items():
            node = data
            *parents, last = dotted.split(".")
            for part in parents:
                node = node[int(part)] if part.isdigit() else node[part]
            node[last] = value
        with pytest.raises(ConfigError) as info:
            parse_config(yaml.safe_dump(data))
        errors = dict(info.value.errors)
        assert path in errors and words in errors[path], (changes, errors)


async def test_waiting_tasks_are_handed_out_when_someone_comes_online(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway(tweak=team("round_robin"))

    async def in_general(text: str) -> str:
        sent = await world.emulator.user_sends(world.operator["id"], chat_id=STAFF_CHAT, text=text)
        return text_of(await world.answer_to(sent))

    for name in ("Ivan", "Maria"):  # nobody online: both wait
        customer = world.customer(name, name.lower())
        await world.say(customer, text=f"hello from {name}")
        await world.in_staff(lambda m, n=name: text_of(m) == f"hello from {n}")
    queue = await in_general("/queue")
    assert queue.startswith("⏳ Waiting for an owner (2), oldest first:")
    assert queue.index("[sales] Ivan") < queue.index("[sales] Maria")
    assert "https://t.me/c/" in queue

    online = await in_general("/online")
    assert online == "Anna is online (2 open task(s); 2 waiting task(s) handed to you)."
    await world.in_staff(lambda m: text_of(m) == "📌 Assigned to Anna (came online).")
    assert await in_general("/queue") == "✅ No task is waiting for an owner."


async def test_view_only_operators_see_but_cannot_write(
    world: World, start_gateway: StartGateway
) -> None:
    def rights(data: dict[str, Any]) -> None:
        other = data["channels"][0] | {"id": "tg_other", "token": "3003:other-bot-token-ccc"}
        data["channels"].append(other)  # the same emulator, another bot
        data["staff"]["operators"] = [{"id": 700001, "name": "Anna", "accounts": ["tg_other"]}]

    await start_gateway(tweak=rights)
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="hello")
    topic = (await world.in_staff(lambda m: text_of(m) == "hello"))["message_thread_id"]
    reply = await world.operator_says(topic, text="Здравствуйте!")
    refused = text_of(await world.answer_to(reply))
    assert refused.startswith("⚠️ Not sent: you can see tg_shop's customers but not write")
    assert not any(text_of(m) == "Здравствуйте!" for m in world.emulator.messages(ivan["id"]))


def test_operator_accounts_must_exist() -> None:
    data = {
        "staff": {
            "token": "1:a",
            "chat_id": -1001,
            "operators": [{"id": 1, "name": "A", "accounts": ["nowhere"]}],
        },
        "channels": [{"id": "tg_shop", "kind": "telegram", "token": "2:b"}],
    }
    with pytest.raises(ConfigError, match="no channel 'nowhere'"):
        parse_config(yaml.safe_dump(data))


async def test_two_workers_assigning_one_task_at_once_have_one_winner(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway(workers=False)
    store = running.app.processes
    contact = "4242"
    now = datetime.now(UTC)

    def opened(current: Any, number_for: Any) -> Any:
        return bp.inbound(current, now, zone=store.zone, sla=store.sla, number_for=number_for)

    await store.apply(contact, now, opened, may_open=True)
    # Two workers (two connections' worth of concurrency) race to assign the same task.
    results = await asyncio.gather(
        *(
            store.apply(contact, now, lambda cur, _, op=op: bp.assign(cur, now, op))
            for op in ("700001", str(BORIS)) * 5
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    current = await store.current(contact)
    assert current is not None
    assert current.task.responsible == winners[0].process.task.responsible
    assert await Presence(running.redis, running.settings).load(current.task.responsible) == 1


async def test_two_replicas_cannot_both_fill_an_operators_last_slot(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway(workers=False)
    store = running.app.processes
    now = datetime.now(UTC)

    def opened(current: Any, number_for: Any) -> Any:
        return bp.inbound(current, now, zone=store.zone, sla=store.sla, number_for=number_for)

    contacts = [str(5000 + n) for n in range(8)]
    for contact in contacts:
        await store.apply(contact, now, opened, may_open=True)
    # Eight new tasks race for Boris, who has room for three more (capacity 3).
    results = await asyncio.gather(
        *(
            store.apply(
                contact,
                now,
                lambda cur, _: bp.assign(cur, now, str(BORIS)),
                room=(str(BORIS), 3),
            )
            for contact in contacts
        )
    )
    assert sum(r is not None for r in results) == 3
    assert await Presence(running.redis, running.settings).load(str(BORIS)) == 3
    unassigned = [c for c, r in zip(contacts, results, strict=True) if r is None]
    for contact in unassigned:  # they stay new, for the next hand-out
        current = await store.current(contact)
        assert current is not None and bp.waits_for_owner(current.task)


async def test_closing_a_task_hands_the_next_waiting_one_to_its_owner(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway(tweak=team("round_robin", anna_max=1))

    async def in_general(text: str) -> str:
        sent = await world.emulator.user_sends(world.operator["id"], chat_id=STAFF_CHAT, text=text)
        return text_of(await world.answer_to(sent))

    topics = {}
    for name in ("Ivan", "Maria"):
        customer = world.customer(name, name.lower())
        await world.say(customer, text=f"hello from {name}")
        said = await world.in_staff(lambda m, n=name: text_of(m) == f"hello from {n}")
        topics[name] = said["message_thread_id"]
    assert await in_general("/online") == (
        "Anna is online (1 open task(s); 1 waiting task(s) handed to you)."
    )
    close = await world.operator_says(topics["Ivan"], text="/close")
    await world.answer_to(close)
    handed = await world.in_staff(lambda m: text_of(m) == "📌 Assigned to Anna (had room again).")
    assert handed["message_thread_id"] == topics["Maria"]
