"""Lines (issue 9): two staff groups in the Telegram emulator — a ``sales`` line for the
Telegram bot, a ``service`` line for WhatsApp. Accounts reach the right group, an
operator in both groups has one capacity, ``/line`` moves a conversation with its open
task, ``/new`` writes first (by phone to a stranger, to a known contact, refused where a
messenger forbids it), and ``/watch`` tells an operator privately of each message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.sandbox.whatsapp import WhatsAppEmulator
from gateway.store import keys
from gateway.store.redis import EmbeddedRedis
from tests.conftest import (
    CUSTOMER_TOKEN,
    OPERATOR_ID,
    STAFF_CHAT,
    STAFF_TOKEN,
    Running,
    StartGateway,
    World,
    config_dict,
    eventually,
    text_of,
)
from tests.test_export import _cli, _differences, _settled, second_redis, snapshot
from tests.test_whatsapp_flow import NUMBER, wa, with_wa

SERVICE_CHAT = -1005550000002
BORIS = 700002
__all__ = ["second_redis", "wa"]  # fixtures of the export and WhatsApp tests, used here too


def two_lines(wa: WhatsAppEmulator) -> Callable[[dict[str, Any]], None]:
    add_wa = with_wa(wa)

    def tweak(data: dict[str, Any]) -> None:
        add_wa(data)
        del data["staff"]["chat_id"]  # with lines: the first line's group
        data["staff"]["operators"] = [
            {"id": OPERATOR_ID, "name": "Anna", "roles": ["sales", "service"], "max_chats": 1},
            {"id": BORIS, "name": "Boris", "roles": ["service"]},
        ]
        data["lines"] = [
            {
                "name": "sales",
                "title": "Sales",
                "chat_id": STAFF_CHAT,
                "accounts": ["tg_shop"],
                "operators": [OPERATOR_ID],
                "responsible": {"role": "sales"},
            },
            {
                "name": "service",
                "title": "Service",
                "chat_id": SERVICE_CHAT,
                "accounts": ["wa_shop"],
                "responsible": {"role": "service", "strategy": "least_busy"},
                "sla": {"first_response_minutes": 5},
                "templates": [{"name": "warranty", "text": "Your warranty is 2 years."}],
            },
        ]

    return tweak


def topic_in(world: World, chat: int, name_part: str) -> int:
    for topic in world.emulator.topics(chat):
        if name_part in topic["name"] and not topic.get("deleted"):
            return int(topic["message_thread_id"])
    raise LookupError(f"no topic like {name_part!r} in {chat}")


async def in_chat(
    world: World, chat: int, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> dict[str, Any]:
    return await world.emulator.wait_for(predicate, chat_id=chat, timeout=timeout)


async def says(world: World, user: int, chat: int, text: str, topic: int | None = None) -> Any:
    extra = {"message_thread_id": topic} if topic else {}
    return await world.emulator.user_sends(user, chat_id=chat, text=text, **extra)


async def online(world: World, user: dict[str, Any], name: str) -> None:
    """The operator opens a private chat with the staff bot and goes online."""
    await world.emulator.user_sends(user["id"], bot_token=STAFF_TOKEN, text="/online")
    await world.in_private(user, lambda m: text_of(m).startswith(f"{name} is online"))


async def contact_of(running: Running, account: str, user: str) -> str:
    contact = await running.app.pipeline.contacts.of_identity(account, user)
    assert contact is not None
    return contact


@pytest.fixture
async def boris(world: World) -> dict[str, Any]:
    """Boris works in the service line only; Anna is in both groups."""
    world.emulator.create_forum_group(
        title="Service",
        members=[OPERATOR_ID],
        bot_tokens=[STAFF_TOKEN],
        chat_id=SERVICE_CHAT,
    )
    user = world.emulator.create_user(first_name="Boris", user_id=BORIS)
    world.emulator.add_member(SERVICE_CHAT, BORIS)
    return user


async def test_accounts_reach_their_lines_and_one_operator_has_one_capacity(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator, boris: dict[str, Any]
) -> None:
    running = await start_gateway(tweak=two_lines(wa))
    assert running.settings.staff.chat_id == STAFF_CHAT
    await online(world, world.operator, "Anna")
    await online(world, boris, "Boris")

    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Сколько стоит доставка?")
    await in_chat(world, STAFF_CHAT, lambda m: text_of(m) == "Сколько стоит доставка?")
    sales_topic = topic_in(world, STAFF_CHAT, "Ivan")
    await in_chat(world, STAFF_CHAT, lambda m: "Assigned to Anna" in text_of(m))

    olga = wa.create_user("Olga", "79031112233")
    wa.user_send(NUMBER, olga, "Сломался чайник")
    await in_chat(world, SERVICE_CHAT, lambda m: text_of(m) == "Сломался чайник")
    service_topic = topic_in(world, SERVICE_CHAT, "Olga")
    assert not any(text_of(m) == "Сломался чайник" for m in world.staff_messages())
    # Anna has room for one task and holds Ivan's: the service line's task goes to Boris,
    # though she is in that group too and first by order.
    await in_chat(world, SERVICE_CHAT, lambda m: "Assigned to Boris" in text_of(m))
    olga_id = await contact_of(running, "wa_shop", "79031112233")
    current = await running.app.processes.current(olga_id)
    assert current is not None
    assert current.task.responsible == str(BORIS) and current.task.line == "service"
    # The service line's SLA: 5 minutes to the first answer (the global default is 15).
    assert (current.task.respond_by - current.task.opened_at).total_seconds() == 300

    # Replies work the same in both groups, and the line's own quick reply is offered
    # only in its group.
    await says(world, BORIS, SERVICE_CHAT, "Пришлите фото, пожалуйста", service_topic)
    await eventually(
        lambda: any(
            m.get("body") == "Пришлите фото, пожалуйста" for m in wa.conversation(NUMBER, olga)
        )
    )
    await says(world, BORIS, SERVICE_CHAT, "//warranty", service_topic)
    await eventually(
        lambda: any(
            m.get("body") == "Your warranty is 2 years." for m in wa.conversation(NUMBER, olga)
        )
    )
    sent = await says(world, OPERATOR_ID, STAFF_CHAT, "//warranty", sales_topic)
    refused = await world.answer_to(sent)
    assert "No quick reply" in text_of(refused)
    await world.operator_says(sales_topic, text="Доставка бесплатная")
    await eventually(
        lambda: any(
            text_of(m) == "Доставка бесплатная"
            for m in world.emulator.messages(ivan["id"], bot_token=CUSTOMER_TOKEN)
        )
    )


async def test_moving_a_conversation_with_its_open_task(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator, boris: dict[str, Any]
) -> None:
    running = await start_gateway(tweak=two_lines(wa))
    await online(world, boris, "Boris")
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Чайник не греет")
    await in_chat(world, STAFF_CHAT, lambda m: text_of(m) == "Чайник не греет")
    old_topic = topic_in(world, STAFF_CHAT, "Ivan")
    ivan_id = await contact_of(running, "tg_shop", str(ivan["id"]))

    await says(world, OPERATOR_ID, STAFF_CHAT, "/line nowhere", old_topic)
    await in_chat(world, STAFF_CHAT, lambda m: "Move to which line?" in text_of(m))
    await says(world, OPERATOR_ID, STAFF_CHAT, "/line service", old_topic)

    arrived = await in_chat(
        world, SERVICE_CHAT, lambda m: "Moved here from line Sales" in text_of(m)
    )
    new_topic = topic_in(world, SERVICE_CHAT, "Ivan")
    assert arrived["message_thread_id"] == new_topic
    assert "Чайник не греет" in text_of(arrived)  # the latest messages come along
    assert f"t.me/c/5550000001/{old_topic}" in text_of(arrived)
    left = await in_chat(world, STAFF_CHAT, lambda m: "Moved to line Service" in text_of(m))
    assert left["message_thread_id"] == old_topic
    assert f"t.me/c/5550000002/{new_topic}" in text_of(left)

    # One open task, now the service line's, handed to its people.
    await in_chat(world, SERVICE_CHAT, lambda m: "Assigned to Boris" in text_of(m))
    current = await running.app.processes.current(ivan_id)
    assert current is not None and len(current.tasks) == 1
    assert current.task.line == "service" and current.task.responsible == str(BORIS)
    assert "task.moved" in await running.event_types()
    # The card follows the task into the new topic.
    await eventually(
        lambda: any(
            text_of(m).startswith("📋 BP-")
            for m in world.emulator.messages(SERVICE_CHAT, message_thread_id=new_topic)
        )
    )

    # What Ivan writes now goes to the service line; replies there reach him.
    await world.say(ivan, text="Алло?")
    posted = await in_chat(world, SERVICE_CHAT, lambda m: text_of(m) == "Алло?")
    assert posted["message_thread_id"] == new_topic
    await says(world, BORIS, SERVICE_CHAT, "Оформим ремонт", new_topic)
    await eventually(
        lambda: any(
            text_of(m) == "Оформим ремонт"
            for m in world.emulator.messages(ivan["id"], bot_token=CUSTOMER_TOKEN)
        )
    )
    assert await running.redis.get(keys.contact_line(ivan_id)) == b"service"


async def test_new_conversations_by_phone_username_and_refusals(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator, boris: dict[str, Any]
) -> None:
    running = await start_gateway(tweak=two_lines(wa))
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Привет")
    await in_chat(world, STAFF_CHAT, lambda m: text_of(m) == "Привет")
    ivan_topic = topic_in(world, STAFF_CHAT, "Ivan")

    async def general(chat: int, text: str) -> str:
        sent = await says(world, OPERATOR_ID, chat, text)
        answer = await in_chat(
            world,
            chat,
            lambda m: (m.get("reply_to_message") or {}).get("message_id") == sent["message_id"],
        )
        return text_of(answer)

    # A stranger by phone: only WhatsApp may write first, and only with a template.
    stranger = wa.create_user("Pavel", "79035556677")
    said = await general(SERVICE_CHAT, "/new +7 903 555-66-77")
    assert "Write to them in their topic" in said and "template" in said
    assert "t.me/c/5550000002/" in said
    opened = await in_chat(world, SERVICE_CHAT, lambda m: "starts a conversation" in text_of(m))
    topic = opened["message_thread_id"]
    assert "wa_shop" in text_of(opened) and "template" in text_of(opened)
    await says(world, OPERATOR_ID, SERVICE_CHAT, "Добрый день!", topic)
    refused = await in_chat(
        world, SERVICE_CHAT, lambda m: "only takes an approved template" in text_of(m)
    )
    assert refused["message_thread_id"] == topic
    await says(world, OPERATOR_ID, SERVICE_CHAT, "/template order_ready Павел 42", topic)
    await eventually(
        lambda: any(m.get("type") == "template" for m in wa.conversation(NUMBER, stranger))
    )
    # Pavel answers: his task opens in the line the conversation was started in.
    wa.user_send(NUMBER, stranger, "Спасибо, заберу")
    answered = await in_chat(world, SERVICE_CHAT, lambda m: text_of(m).endswith("Спасибо, заберу"))
    assert answered["message_thread_id"] == topic

    # A known customer by phone, who wrote within 24 hours: free text may go.
    olga = wa.create_user("Olga", "79031112233")
    wa.user_send(NUMBER, olga, "Где мой заказ?")
    await in_chat(world, SERVICE_CHAT, lambda m: text_of(m) == "Где мой заказ?")
    said = await general(SERVICE_CHAT, "/new 8 (903) 111-22-33")
    olga_topic = topic_in(world, SERVICE_CHAT, "Olga")
    assert f"t.me/c/5550000002/{olga_topic}" in said and "template" not in said

    # A known customer by @username: their topic, through the bot they wrote to.
    said = await general(STAFF_CHAT, "/new @ivan")
    assert f"t.me/c/5550000001/{ivan_topic}" in said
    # Refusals say the messenger's rule.
    said = await general(STAFF_CHAT, "/new @nobody_here")
    assert "Cannot start it" in said and "started them" in said
    said = await general(STAFF_CHAT, "/new +7 916 000-11-22 via tg_shop")
    assert "only WhatsApp lets a business write first to a phone number" in said
    ivan_id = await contact_of(running, "tg_shop", str(ivan["id"]))
    said = await general(STAFF_CHAT, f"/new #{ivan_id} via wa_shop")
    assert "Cannot start it" in said and "phone" in said
    said = await general(STAFF_CHAT, "/new")
    assert said.startswith("Start a conversation: /new")
    # Ivan's task is open in sales: /new from the service line points there.
    said = await general(SERVICE_CHAT, "/new @ivan")
    assert "open task in line Sales" in said and "/line service" in said


async def test_watching_a_customer(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator, boris: dict[str, Any]
) -> None:
    await start_gateway(tweak=two_lines(wa))
    await online(world, world.operator, "Anna")
    await online(world, boris, "Boris")
    olga = wa.create_user("Olga", "79031112233")
    wa.user_send(NUMBER, olga, "Первое")
    await in_chat(world, SERVICE_CHAT, lambda m: text_of(m) == "Первое")
    topic = topic_in(world, SERVICE_CHAT, "Olga")

    def notices(user: dict[str, Any]) -> list[str]:
        return [
            text_of(m)
            for m in world.emulator.messages(user["id"], bot_token=STAFF_TOKEN)
            if text_of(m).startswith("👁 Olga")
        ]

    await says(world, OPERATOR_ID, SERVICE_CHAT, "/watch", topic)
    await in_chat(world, SERVICE_CHAT, lambda m: "You get each new message of Olga" in text_of(m))
    wa.user_send(NUMBER, olga, "Второе")
    await eventually(lambda: any("Второе" in n for n in notices(world.operator)))
    [told] = notices(world.operator)
    assert f"t.me/c/5550000002/{topic}/" in told and "whatsapp · wa_shop" in told
    assert notices(boris) == []  # responsible, but not watching

    listing = await says(world, OPERATOR_ID, STAFF_CHAT, "/watching")
    answer = await world.answer_to(listing)
    assert "Olga" in text_of(answer) and f"t.me/c/5550000002/{topic}" in text_of(answer)

    await says(world, OPERATOR_ID, SERVICE_CHAT, "/unwatch", topic)
    await in_chat(world, SERVICE_CHAT, lambda m: "no longer watch Olga" in text_of(m))
    wa.user_send(NUMBER, olga, "Третье")
    await in_chat(world, SERVICE_CHAT, lambda m: text_of(m) == "Третье")
    await says(world, OPERATOR_ID, SERVICE_CHAT, "/watch", topic)
    await eventually(  # the second such answer (the first is there already)
        lambda: (
            sum(
                text_of(m).startswith("👁 You get each")
                for m in world.emulator.messages(SERVICE_CHAT, message_thread_id=topic)
            )
            == 2
        )
    )
    wa.user_send(NUMBER, olga, "Четвёртое")
    await eventually(lambda: any("Четвёртое" in n for n in notices(world.operator)))
    # Nothing for the message written while she was not watching (notices are in order).
    assert not any("Третье" in n for n in notices(world.operator))


async def test_an_export_carries_lines_topics_and_watchers(
    world: World,
    start_gateway: StartGateway,
    wa: WhatsAppEmulator,
    boris: dict[str, Any],
    redis_url: str,
    second_redis: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    running = await start_gateway(tweak=two_lines(wa))
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Чайник не греет")
    await in_chat(world, STAFF_CHAT, lambda m: text_of(m) == "Чайник не греет")
    old_topic = topic_in(world, STAFF_CHAT, "Ivan")
    await says(world, OPERATOR_ID, STAFF_CHAT, "/line service", old_topic)
    await in_chat(world, SERVICE_CHAT, lambda m: "Moved here" in text_of(m))
    await says(world, OPERATOR_ID, SERVICE_CHAT, "/watch", topic_in(world, SERVICE_CHAT, "Ivan"))
    await in_chat(world, SERVICE_CHAT, lambda m: "You get each new message" in text_of(m))
    wa.create_user("Pavel", "79035556677")
    await says(world, OPERATOR_ID, SERVICE_CHAT, "/new +7 903 555-66-77")
    await in_chat(world, SERVICE_CHAT, lambda m: "starts a conversation" in text_of(m))
    await _settled(running)
    await running.stop()

    def config(url: str, name: str) -> Path:
        data = config_dict(world.emulator.base_url, url)
        data["data_dir"] = str(tmp_path / f"data-{name}")
        two_lines(wa)(data)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    exported = tmp_path / "export.jsonl"
    done = _cli("export", "-c", str(config(redis_url, "source")), "-o", str(exported))
    assert done.returncode == 0, done.stderr
    ivan_line = next(
        json.loads(x)
        for x in exported.read_text().splitlines()
        if '"type":"contact"' in x and '"Ivan"' in x
    )
    assert ivan_line["line"] == "service" and ivan_line["watchers"] == [str(OPERATOR_ID)]
    assert ivan_line["topic"]["thread"] == old_topic and str(SERVICE_CHAT) in ivan_line["topics"]
    done = _cli("import", str(exported), "-c", str(config(second_redis.url, "target")))
    assert done.returncode == 0, done.stderr
    assert _differences(await snapshot(redis_url), await snapshot(second_redis.url)) == []


async def test_a_receipt_marks_the_reply_in_the_group_it_was_written_in(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator, boris: dict[str, Any]
) -> None:
    """The conversation moved on to another line before the receipt came: 👌 still goes
    on the operator's message, in the group it is in."""
    await start_gateway(tweak=two_lines(wa))
    wa.auto_deliver = False
    olga = wa.create_user("Olga", "79160000002")
    wa.user_send(NUMBER, olga, "Сломался чайник")
    await in_chat(world, SERVICE_CHAT, lambda m: text_of(m) == "Сломался чайник")
    topic = topic_in(world, SERVICE_CHAT, "Olga")
    reply = await says(world, BORIS, SERVICE_CHAT, "Пришлём мастера", topic)
    await eventually(
        lambda: any(m.get("body") == "Пришлём мастера" for m in wa.conversation(NUMBER, olga))
    )
    sent = next(m for m in wa.conversation(NUMBER, olga) if m.get("body") == "Пришлём мастера")
    await says(world, BORIS, SERVICE_CHAT, "/line sales", topic)
    await in_chat(world, STAFF_CHAT, lambda m: "Moved here from line Service" in text_of(m))
    wa.user_receives(NUMBER, olga, sent["id"])

    def marks() -> list[tuple[int, str]]:
        return [
            (int(c.params["chat_id"]), str(c.params.get("reaction")))
            for c in world.emulator.calls_of("setMessageReaction")
            if int(c.params["message_id"]) == reply["message_id"] and c.status == 200
        ]

    await eventually(lambda: any(chat == SERVICE_CHAT and "👌" in r for chat, r in marks()))
