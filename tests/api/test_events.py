"""``POST /api/v1/events``: missed calls, forms and e-mails go through the pipeline like
messages — the person found by phone or e-mail, the task opened or updated, a line in
their topic — once per event id, and bad input is refused with the field's path."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.store import keys
from tests.api.conftest import VIEWER_TOKEN, StartApi
from tests.conftest import World, eventually, text_of

CALL = {"type": "missed_call", "id": "call-1", "phone": "+7 916 123-45-67", "line": "Sales"}


async def events(api: Any, contact: str | None = None) -> list[dict[str, Any]]:
    raw = await api.running.redis.xrange("gw:events")
    found = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]
    return [e for e in found if contact is None or e["contact"] == contact]


async def test_a_missed_call_from_a_stranger_opens_a_task_in_a_new_topic(
    world: World, start_api: StartApi
) -> None:
    api = await start_api()
    accepted = await api.post("/events", CALL, expect=202)
    assert accepted == {"id": "api:crm:missed_call:call-1", "duplicate": False}

    notice = await world.in_staff(lambda m: "📞 Missed call from" in text_of(m))
    assert "+79161234567 · line Sales ·" in text_of(notice)
    topic = world.topic_of("+79161234567")
    assert notice["message_thread_id"] == topic
    await world.in_staff(
        lambda m: text_of(m).startswith("📋 BP-") and m.get("message_thread_id") == topic
    )
    types = [e["type"] for e in await events(api)]
    assert types[:3] == ["process.opened", "task.opened", "message.inbound"]
    inbound = json.loads((await events(api))[2]["data"])
    assert inbound["channel"] == "api" and "Missed call" in inbound["text"]

    # The same event again (a retry of the client): recognised, nothing more happens.
    again = await api.post("/events", CALL, expect=202)
    assert again["duplicate"] is True
    found = await api.get("/contacts", params={"phone": "+79161234567"})
    assert len(found["items"]) == 1
    # Handled once, cleanly: a handler that failed after its commit would be retried
    # and, after ~1.5 s of backoff, dead-lettered. Give it that long to show.
    await asyncio.sleep(2)
    assert await api.running.redis.xlen(keys.dead_letters(keys.INBOUND)) == 0


async def test_a_customer_known_by_phone_gets_the_call_in_their_own_topic(
    world: World, start_api: StartApi
) -> None:
    api = await start_api()
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="hello")
    await world.in_staff(lambda m: text_of(m) == "hello")
    own = {"phone_number": "+79161234567", "first_name": "Ivan", "user_id": ivan["id"]}
    await world.say(ivan, contact=own)
    topic = world.topic_of("Ivan")
    await eventually(lambda: len(world.staff_messages(topic)) >= 3)

    await api.post("/events", {**CALL, "phone": "8 916 123 45 67"}, expect=202)

    notice = await world.in_staff(lambda m: "📞 Missed call from" in text_of(m))
    assert notice["message_thread_id"] == topic  # the same person, the same topic
    assert len(world.emulator.topics(-1005550000001)) == 1
    updated = [e for e in await events(api) if e["type"] == "task.opened"]
    assert len(updated) == 1  # the call updated the open task: no second one


async def test_a_form_and_an_email_find_the_person_by_email(
    world: World, start_api: StartApi
) -> None:
    api = await start_api()
    form = {
        "type": "form",
        "id": "f-77",
        "name": "Olga",
        "email": "Olga@Example.com",
        "line": "Contact us",
        "text": "Do you deliver to Kazan?",
    }
    await api.post("/events", form, expect=202)
    first = await world.in_staff(lambda m: "📝 Website form «Contact us»" in text_of(m))
    assert "Do you deliver to Kazan?" in text_of(first)
    mail = {
        "type": "email",
        "id": "<m1@example.com>",
        "email": "olga@example.com",
        "subject": "Re: delivery",
        "text": "And to Samara?",
    }
    await api.post("/events", mail, expect=202)
    second = await world.in_staff(lambda m: "✉️ E-mail from olga@example.com" in text_of(m))
    assert "Subject: Re: delivery" in text_of(second)
    assert second["message_thread_id"] == first["message_thread_id"]


async def test_an_operator_cannot_answer_a_missed_call_in_its_topic(
    world: World, start_api: StartApi
) -> None:
    api = await start_api()
    await api.post("/events", CALL, expect=202)
    notice = await world.in_staff(lambda m: "📞 Missed call from" in text_of(m))
    said = await world.operator_says(notice["message_thread_id"], text="Calling you back now")
    told = await world.answer_to(said)
    assert "Not delivered" in text_of(told) and "messenger" in text_of(told)


async def test_bad_events_are_refused_with_the_field(world: World, start_api: StartApi) -> None:
    api = await start_api()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "missed_call", "id": "x"}, "phone"),
        ({**CALL, "phone": "not a phone"}, "phone"),
        ({**CALL, "phone": "+1 555"}, "phone"),
        ({"type": "email", "id": "x", "email": "nobody@"}, "email"),
        ({**CALL, "account": "no_such"}, "account"),
        ({**CALL, "type": "fax"}, "type"),
        ({**CALL, "at": "2026-11-24T10:00:00"}, "at"),  # no offset: ambiguous
        ({**CALL, "id": ""}, "id"),
        ({**CALL, "extra": 1}, "extra"),
    ]
    for body, field in cases:
        status, answer = await api.call("POST", "/events", json=body)
        assert status == 400, (body, answer)
        assert field in json.dumps(answer["error"]), (body, answer)
    status, answer = await api.call("POST", "/events", json=CALL, token=None)
    assert status == 401
    status, answer = await api.call("POST", "/events", json=CALL, token=VIEWER_TOKEN)
    assert status == 403
    assert await events(api) == []  # nothing got in
