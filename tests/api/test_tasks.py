"""Tasks through the API — take, transfer, close, assign — change the task exactly as the
staff buttons do: the card in the topic is redrawn, the topic says who did it, events
name the API client; listings filter and page; operators show their load."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.api.conftest import BORIS, Api, StartApi, customer_writes, with_boris
from tests.conftest import OPERATOR_ID, Clock, World, text_of

MSK = ZoneInfo("Europe/Moscow")
ANNA = str(OPERATOR_ID)
PROCESS = "BP-20261123-0001"


async def _card_says(world: World, topic: int, expected: str) -> str:
    """The topic's task card (edited in place) once it shows ``expected``."""
    for _ in range(300):
        cards = [m for m in world.staff_messages(topic) if text_of(m).startswith("📋 ")]
        if cards and expected in text_of(cards[0]):
            return text_of(cards[0])
        await asyncio.sleep(0.02)
    raise AssertionError(f"the card never showed {expected!r}: {[text_of(c) for c in cards]}")


async def _events(api: Api, kind: str) -> list[dict[str, Any]]:
    found = []
    for _, fields in await api.running.redis.xrange("gw:events"):
        if fields[b"type"].decode() == kind:
            found.append({k.decode(): v.decode() for k, v in fields.items()})
    return found


async def test_take_transfer_close_assign_like_the_buttons(
    world: World, start_api: StartApi
) -> None:
    world.emulator.create_user(first_name="Boris", user_id=BORIS)
    world.emulator.add_member(-1005550000001, BORIS)
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))

    def config(data: dict[str, Any]) -> None:
        with_boris(data)
        data["channels"][0]["csat"] = {"enabled": True, "question": "Rate us, 1 to 5"}

    api = await start_api(tweak=config, clock=clock)
    ivan = await customer_writes(world, api, "Ivan", "where is my order?")
    await _card_says(world, ivan.topic, "🟢 new")
    base = f"/contacts/{ivan.contact_id}/task"
    current = await api.get(base)
    assert current["process"]["number"] == PROCESS and current["task"]["status"] == "new"
    assert current["task"]["respond_by"] == "2026-11-23T10:15:00+03:00"
    assert current["task"]["awaiting_reply"] and not current["task"]["overdue"]

    # Take, for Anna: the card is redrawn and the topic says who did it.
    taken = await api.post(f"{base}/take", {"operator": ANNA, "process": PROCESS, "task": 1})
    assert taken["applied"] and taken["task"]["status"] == "in_work"
    assert taken["task"]["responsible"] == ANNA
    await _card_says(world, ivan.topic, "🟡 in work — Anna")
    await world.in_staff(lambda m: text_of(m) == f"🟡 Anna took {PROCESS}, task 1. (by api:crm)")
    [event] = await _events(api, "task.taken")
    assert event["actor"] == "api:crm" and json.loads(event["data"]) == {"operator": ANNA}
    status, body = await api.call("POST", f"{base}/take", json={"operator": ANNA})
    assert status == 409 and body["error"]["message"] == "You already have this task."
    status, body = await api.call("POST", f"{base}/take", json={"operator": "123"})
    assert status == 400 and body["error"]["details"][0]["loc"] == ["body", "operator"]
    # Conditional on the task the client saw: a stale one changes nothing.
    status, body = await api.call("POST", f"{base}/close", json={"process": "BP-1", "task": 1})
    assert status == 409 and body["error"]["code"] == "stale"
    status, body = await api.call("POST", f"{base}/close", json={"task": 2, "reason": "sold"})
    assert status == 409 and body["error"]["code"] == "stale"

    # Transfer to Boris: he is mentioned, the task waits for him.
    moved = await api.post(f"{base}/transfer", {"to": "boris"})
    assert moved["task"]["status"] == "returned" and moved["task"]["transferred_to"] == str(BORIS)
    await _card_says(world, ivan.topic, "Waiting for: Boris")
    told = await world.in_staff(lambda m: "handed to Boris" in text_of(m))
    assert [e["user"]["id"] for e in told.get("entities", []) if "user" in e] == [BORIS]
    status, body = await api.call("POST", f"{base}/transfer", json={"to": "nobody"})
    assert status == 400 and body["error"]["details"][0]["loc"] == ["body", "to"]

    # Close: the account's reasons apply; a retry with the same key changes nothing more.
    status, body = await api.call("POST", f"{base}/close", json={"reason": "bored"})
    assert status == 400 and "sold, spam" in body["error"]["message"]
    key = {"Idempotency-Key": "close-ivan-1"}
    closed = await api.post(f"{base}/close", {"reason": "sold"}, headers=key)
    assert closed["applied"] and closed["task"]["status"] == "closed"
    assert closed["task"]["close_reason"] == "sold"
    await _card_says(world, ivan.topic, "✅ closed")
    await world.in_staff(lambda m: text_of(m) == f"✅ Closed {PROCESS}, task 1: sold. (by api:crm)")
    # A close by a client asks the customer to rate it, as a close by staff does.
    await world.in_private(ivan.user, lambda m: text_of(m) == "Rate us, 1 to 5")
    again = await api.post(f"{base}/close", {"reason": "sold"}, headers=key)
    assert not again["applied"] and again["task"]["status"] == "closed"
    asked = [m for m in world.emulator.messages(ivan.user["id"]) if "Rate us" in text_of(m)]
    assert len(asked) == 1
    assert len(await _events(api, "task.closed")) == 1
    status, body = await api.call("POST", f"{base}/close", json={"reason": "sold"})
    assert status == 409 and body["error"]["message"] == "There is no open task."

    # Assign Maria's new task to Boris; he has room for one.
    maria = await customer_writes(world, api, "Maria", "hello?")
    given = await api.post(f"/contacts/{maria.contact_id}/task/assign", {"operator": str(BORIS)})
    assert given["task"]["status"] == "new" and given["task"]["responsible"] == str(BORIS)
    await world.in_staff(lambda m: text_of(m) == "📌 Assigned to Boris (by api:crm).")
    status, body = await api.call(
        "POST", f"/contacts/{maria.contact_id}/task/assign", json={"operator": ANNA}
    )
    assert status == 409 and body["error"]["code"] == "has_owner"
    oleg = await customer_writes(world, api, "Oleg", "hi")
    status, body = await api.call(
        "POST", f"/contacts/{oleg.contact_id}/task/assign", json={"operator": str(BORIS)}
    )
    assert status == 409 and body["error"]["code"] == "at_capacity"

    # Operators: availability and load, as /status has them.
    operators = {o["id"]: o for o in (await api.get("/operators"))["items"]}
    assert operators[str(BORIS)]["load"] == 1 and operators[str(BORIS)]["capacity"] == 1
    assert operators[ANNA]["load"] == 0 and operators[ANNA]["status"] == "offline"
    assert not operators[str(BORIS)]["available"]
    await world.operator_says(ivan.topic, text="/online")
    await world.in_staff(lambda m: text_of(m).startswith("Anna is online"))
    anna = await api.get(f"/operators/{ANNA}")
    assert anna["status"] == "online" and anna["available"] and anna["since"].endswith("+03:00")
    assert (await api.call("GET", "/operators/42"))[0] == 404

    # Listings: filters and pages.
    async def walk(path: str, **params: str) -> list[dict[str, Any]]:
        items, cursor = [], None
        while True:
            page = await api.get(path, params=params | ({"cursor": cursor} if cursor else {}))
            items += page["items"]
            if (cursor := page["next_cursor"]) is None:
                return items

    everything = await walk("/tasks", limit="1")
    assert sorted(t["contact_id"] for t in everything) == sorted(
        [ivan.contact_id, maria.contact_id, oleg.contact_id]
    )
    closed_tasks = await walk("/tasks", status="closed")
    assert [(t["contact_id"], t["close_reason"]) for t in closed_tasks] == [
        (ivan.contact_id, "sold")
    ]
    assert {t["contact_id"] for t in await walk("/tasks", status="open")} == {
        maria.contact_id,
        oleg.contact_id,
    }
    boris = await walk("/processes", operator=str(BORIS))  # responsible, or transferred to
    assert sorted(p["contact_id"] for p in boris) == sorted([ivan.contact_id, maria.contact_id])
    assert await walk("/processes", account="tg_other") == []
    assert len(await walk("/processes", account="tg_shop", date_from="2026-11-23")) == 3
    assert await walk("/processes", date_to="2026-11-22") == []
    mine = await walk("/processes", contact_id=ivan.contact_id)
    assert [p["number"] for p in mine] == [PROCESS] and mine[0]["current"]
    for params in ({"status": "done"}, {"date_from": "2026-11-24", "date_to": "2026-11-23"}):
        assert (await api.call("GET", "/processes", params=params))[0] == 400
    process = await api.get(f"/contacts/{ivan.contact_id}/processes/{PROCESS}")
    assert process["status"] == "closed" and process["tasks"][0]["closed_at"].endswith("+03:00")
    for path in (f"/contacts/{ivan.contact_id}/processes/BP-0", "/contacts/999/task"):
        assert (await api.call("GET", path))[0] == 404
    status, body = await api.call("POST", "/contacts/999/task/close", json={})
    assert status == 404
