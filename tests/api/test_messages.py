"""Messages through the API: a send reaches the customer through the durable outbound
path and shows in the topic; on an operator's behalf it answers the task; the history
reads every message in and out, page by page."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.conftest import BORIS, VIEWER_TOKEN, Api, StartApi, customer_writes
from tests.conftest import CUSTOMER_TOKEN, OPERATOR_ID, World, text_of

SUPPORT_TOKEN = "1003:support-bot-token-cccccccccccccccccccc"


def config(data: dict[str, Any]) -> None:
    shop = data["channels"][0]
    data["channels"].append({**shop, "id": "tg_support", "token": SUPPORT_TOKEN})
    data["staff"]["operators"] = [
        {"id": OPERATOR_ID, "name": "Anna"},
        {"id": BORIS, "name": "Boris", "accounts": ["tg_support"]},
    ]


async def _outcome(api: Api, send_id: str) -> dict[str, Any]:
    for _ in range(300):
        status = await api.get(f"/outbound/{send_id}")
        if status["status"] != "queued":
            return dict(status)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{send_id} stayed queued")


async def test_send_history_and_their_errors(world: World, start_api: StartApi) -> None:
    api = await start_api(tweak=config)
    ivan = await customer_writes(world, api, "Ivan", "is my order ready?")
    path = f"/contacts/{ivan.contact_id}/messages"

    # A message of the business: delivered once, shown in the topic, the task untouched.
    key = {"Idempotency-Key": "order-48213-ready"}
    queued = await api.post(path, {"text": "Your order is ready"}, expect=202, headers=key)
    assert queued["status"] == "queued" and queued["applied"]
    assert (queued["account"], queued["channel"]) == ("tg_shop", "telegram")
    await world.in_private(ivan.user, lambda m: text_of(m) == "Your order is ready")
    note = await world.in_staff(
        lambda m: text_of(m) == "🤖 Sent the API message (crm): Your order is ready"
    )
    assert note["message_thread_id"] == ivan.topic
    sent = await _outcome(api, queued["id"])
    assert sent["status"] == "sent" and len(sent["message_ids"]) == 1
    repeat = await api.post(path, {"text": "Your order is ready"}, expect=202, headers=key)
    assert repeat["id"] == queued["id"] and not repeat["applied"]
    task = await api.get(f"/contacts/{ivan.contact_id}/task")
    assert task["task"]["status"] == "new" and task["task"]["awaiting_reply"]

    # On Anna's behalf: it answers the task, as her reply in the topic would.
    mine = await api.post(path, {"text": "Anna here", "operator": str(OPERATOR_ID)}, expect=202)
    await world.in_private(ivan.user, lambda m: text_of(m) == "Anna here")
    await world.in_staff(
        lambda m: text_of(m) == "🤖 Sent the API message (crm, for Anna): Anna here"
    )
    task = await api.get(f"/contacts/{ivan.contact_id}/task")
    assert task["task"]["status"] == "in_work" and not task["task"]["awaiting_reply"]
    assert task["task"]["responsible"] == str(OPERATOR_ID)
    assert (await _outcome(api, mine["id"]))["status"] == "sent"
    received = [
        m for m in world.emulator.messages(ivan.user["id"]) if text_of(m) == "Your order is ready"
    ]
    assert len(received) == 1  # the retried request sent nothing more

    # History: newest first, page by page, and the other way round.
    history = await api.get(path)
    assert [(m["direction"], m["text"], m["operator"]) for m in history["items"]] == [
        ("out", "Anna here", str(OPERATOR_ID)),
        ("out", "Your order is ready", "api:crm"),
        ("in", "is my order ready?", None),
    ]
    assert history["items"][2]["at"].endswith("+03:00")
    assert history["items"][0]["process"] == task["process"]["number"]

    async def walk(**params: str) -> list[str]:
        texts, cursor = [], None
        while True:
            page = await api.get(path, params=params | ({"cursor": cursor} if cursor else {}))
            texts += [m["text"] for m in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                return texts

    assert await walk(limit="1") == ["Anna here", "Your order is ready", "is my order ready?"]
    assert await walk(limit="2", order="oldest") == [
        "is my order ready?",
        "Your order is ready",
        "Anna here",
    ]
    for params in (
        {"cursor": "nope"},
        {"cursor": f"{2**70}-0.1"},  # beyond a stream id: refused before Redis sees it
        {"cursor": "1-0.0"},
        {"order": "sideways"},
        {"limit": "201"},
    ):
        assert (await api.call("GET", path, params=params))[0] == 400

    # Refusals, each before anything is queued.
    for body, status, code in (
        ({"text": "x", "template": {"name": "t"}}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        ({"text": ""}, 400, "invalid_request"),
        ({"text": "x", "account": "tg_nowhere"}, 400, "invalid_request"),
        ({"text": "x", "account": "tg_support"}, 409, "no_route"),  # he never wrote there
        ({"template": {"name": "order_ready"}}, 400, "invalid_request"),  # not WhatsApp
        ({"text": "x", "operator": "123"}, 400, "invalid_request"),
        ({"text": "x", "operator": str(BORIS)}, 403, "operator_may_not_send"),
    ):
        code_, answer = await api.call("POST", path, json=body)
        assert (code_, answer["error"]["code"]) == (status, code), (body, answer)
        if code == "no_route":  # the messenger's rule, as /new says it
            assert "Telegram bots write only to people who started the bot" in str(answer)
    assert (await api.call("POST", "/contacts/999/messages", json={"text": "x"}))[0] == 404
    assert (await api.call("GET", "/contacts/999/messages"))[0] == 404
    # Another client does not see this one's sends; unknown ids are 404.
    assert (await api.call("GET", f"/outbound/{queued['id']}", token=VIEWER_TOKEN))[0] == 404
    assert (await api.call("GET", "/outbound/api:crm:send_message:nope"))[0] == 404
    assert (await api.call("GET", "/outbound/whatever"))[0] == 400

    # The customer blocked the bot: the send fails, and staff see why in the topic.
    world.emulator.block_bot(ivan.user["id"], CUSTOMER_TOKEN)
    failed = await api.post(path, {"text": "are you there?"}, expect=202)
    assert (await _outcome(api, failed["id"]))["status"] == "failed"
    await world.in_staff(
        lambda m: text_of(m).startswith("🤖 The API message (crm) was not delivered")
    )
    assert queued["id"].startswith("api:crm:send_message:")
