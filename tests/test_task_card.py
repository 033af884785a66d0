"""The pinned task card in a contact's topic and its buttons, through the emulator."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import (
    STAFF_CHAT,
    StartGateway,
    World,
    answer_of,
    buttons_of,
    eventually,
    text_of,
)

MSK = ZoneInfo("Europe/Moscow")
BORIS = 700002
LONG_REASON = "Клиент передумал и ушёл к конкурентам"  # > 64 bytes as callback data


def _buttons(message: dict[str, Any]) -> list[str]:
    return [b["text"] for b in buttons_of(message)]


async def test_card_buttons(world: World, start_gateway: StartGateway) -> None:
    world.emulator.create_user(first_name="Boris", user_id=BORIS)
    world.emulator.add_member(STAFF_CHAT, BORIS)

    def config(data: dict[str, Any]) -> None:
        data["staff"]["operators"].append({"id": BORIS, "name": "Boris"})
        data["channels"][0] |= {"close_reasons": ["sold", "spam", LONG_REASON]}

    await start_gateway(tweak=config, clock=lambda: datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    ivan = world.customer()
    await world.say(ivan, text="hello")
    card = await world.in_staff(lambda m: text_of(m).startswith("📋 BP-20261123-0001"))
    assert _buttons(card) == ["Take", "Close", "Transfer"]

    async def pinned() -> bool:
        return any(
            c.method.lower() == "pinchatmessage"
            and int(c.params["message_id"]) == card["message_id"]
            for c in world.emulator.calls
        )

    await eventually(pinned)
    operator = world.operator["id"]

    async def press(
        data: str, user: int = operator, message: dict[str, Any] = card
    ) -> dict[str, Any]:
        query = await world.emulator.press_button(user, STAFF_CHAT, message["message_id"], data)
        return await answer_of(world, query)

    def current_card() -> dict[str, Any]:
        return next(m for m in world.staff_messages() if m["message_id"] == card["message_id"])

    async def card_says(expected: str) -> dict[str, Any]:
        for _ in range(200):
            if expected in text_of(current_card()):
                return current_card()
            await asyncio.sleep(0.02)
        raise AssertionError(f"card never showed {expected!r}: {text_of(current_card())}")

    # Someone who is not an operator: refused with an alert, nothing changes.
    mallory = world.emulator.create_user(first_name="Mallory")
    world.emulator.add_member(STAFF_CHAT, mallory["id"])
    refused = await press("t:take", user=mallory["id"])
    assert refused.get("show_alert") and "Only operators" in refused.get("text", "")

    taken = await press("t:take")
    assert "Anna took BP-20261123-0001, task 1" in taken.get("text", "")
    updated = await card_says("🟡 in work — Anna")
    assert _buttons(updated) == ["Close", "Transfer"]

    await press("t:transfer")
    offer = await world.in_staff(lambda m: text_of(m) == "Transfer to whom?")
    assert _buttons(offer) == ["Boris"]
    await press(f"t:transfer:{BORIS}", message=offer)
    await card_says("Waiting for: Boris")

    await press("t:close")
    reasons = await world.in_staff(lambda m: text_of(m) == "Close with which reason?")
    assert _buttons(reasons) == ["sold", "spam", LONG_REASON]
    # Reasons travel by index: a long (Cyrillic) reason would not fit 64 bytes.
    assert [b["callback_data"] for b in buttons_of(reasons)] == [f"t:close:#{i}" for i in range(3)]
    closed = await press("t:close:#0", message=reasons)
    assert "Closed BP-20261123-0001, task 1: sold" in closed.get("text", "")
    final = await card_says("✅ closed")
    assert _buttons(final) == ["Reopen"]
    reopened = await press("t:reopen")
    assert "Reopened BP-20261123-0001, task 1" in reopened.get("text", "")
    again = await card_says("🟡 in work — Anna")
    assert _buttons(again) == ["Close", "Transfer"]
