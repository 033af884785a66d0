"""``/contacts``: search as ``/find`` does, read, list page by page, merge and unmerge —
against a real gateway, with the effects checked in the emulated staff group."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.api.conftest import VIEWER_TOKEN, StartApi, customer_writes
from tests.conftest import STAFF_CHAT, World, eventually, text_of

SUPPORT_TOKEN = "1003:support-bot-token-cccccccccccccccccccc"
PHONE = "+79161234567"


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def two_bots(data: dict[str, Any]) -> None:
    shop = data["channels"][0]
    data["channels"].append({**shop, "id": "tg_support", "token": SUPPORT_TOKEN})


async def test_search_read_list_merge_and_unmerge(world: World, start_api: StartApi) -> None:
    api = await start_api(tweak=two_bots)
    ivan = await customer_writes(world, api, "Ivan", "hello from the shop bot")
    await customer_writes(world, api, "Maria", "hi, Maria here")
    await world.operator_says(ivan.topic, text="/phone 8 (916) 123-45-67")
    await world.in_staff(lambda m: text_of(m) == f"📞 {PHONE} saved.")
    await world.operator_says(ivan.topic, text="/email Ivan@Example.COM")
    await world.in_staff(lambda m: text_of(m) == "✉️ ivan@example.com saved.")

    # Search: a phone in any written form, an e-mail in any case, a name, q as /find.
    for params in (
        {"phone": "+7 916 123 45 67"},
        {"phone": "89161234567"},
        {"email": "IVAN@example.com"},
        {"name": "iva"},
        {"q": "@ivan"},
        {"q": "8-916-123-45-67"},
        {"q": "ivan@example.com"},
    ):
        found = await api.get("/contacts", params=params, token=VIEWER_TOKEN)
        assert [c["id"] for c in found["items"]] == [ivan.contact_id], params
        assert found["next_cursor"] is None
    assert (await api.get("/contacts", params={"phone": "+79990000000"}))["items"] == []
    for params, field in (
        ({"phone": "not a phone"}, "phone"),
        ({"email": "nope@"}, "email"),
        ({"phone": "+7916", "name": "x y"}, None),
        ({"q": "x"}, "q"),
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"cursor": "!!"}, "cursor"),
        ({"cursor": _cursor([2**70, 0])}, "cursor"),  # beyond a SCAN cursor
        ({"cursor": _cursor([1, -1])}, "cursor"),
        ({"cursor": _cursor({"a": 1})}, "cursor"),
        ({"stauts": "new"}, "stauts"),
        ({"name": "ivan", "cursor": "W10"}, "cursor"),
    ):
        status, body = await api.call("GET", "/contacts", params=params)
        assert status == 400, (params, body)
        assert body["error"]["code"] == "invalid_request"
        if field is not None:
            assert body["error"]["details"][0]["loc"] == ["query", field], body

    # Read one: identities, phones, e-mails, where replies go, its topic.
    contact = await api.get(f"/contacts/{ivan.contact_id}")
    assert contact["display_name"] == "Ivan" and contact["username"] == "ivan"
    assert contact["phones"] == [PHONE] and contact["emails"] == ["ivan@example.com"]
    assert contact["identities"] == [
        {
            "account": "tg_shop",
            "user_id": str(ivan.user["id"]),
            "channel": "telegram",
            "last_seen": contact["last_seen"],
        }
    ]
    assert contact["replies_via"] == {"account": "tg_shop", "channel": "telegram"}
    assert contact["topic_url"] == f"https://t.me/c/5550000001/{ivan.topic}"
    assert contact["last_seen"].endswith("+03:00")  # the gateway's zone, with its offset
    for path, status in (("/contacts/999", 404), ("/contacts/abc", 400), ("/contacts/0", 400)):
        code, body = await api.call("GET", path)
        assert code == status, body

    # The same person writes to the support bot: another contact, until merged.
    support = world.customer("Ivan P.", "ivan_p")
    await world.emulator.user_sends(support["id"], bot_token=SUPPORT_TOKEN, text="via support")
    second = await world.in_staff(lambda m: text_of(m) == "via support")
    found = await api.get("/contacts", params={"name": "ivan_p"})
    other = found["items"][0]["id"]
    assert other != ivan.contact_id

    # Listing every contact, page by page: each once, whatever the page size.
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
        page = await api.get("/contacts", params=params)
        assert len(page["items"]) <= 1
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen, key=int) == ["1", "2", "3"]

    # Merge: the support contact into Ivan's, as /merge does.
    path = f"/contacts/{ivan.contact_id}/merge"
    merged = await api.post(path, {"contact_id": other}, headers={"Idempotency-Key": "m-1"})
    assert merged["absorbed"] == other
    assert f"tg_support:{support['id']}" in [
        f"{i['account']}:{i['user_id']}" for i in merged["contact"]["identities"]
    ]
    welcome = await world.in_staff(lambda m: "is merged into this one" in text_of(m))
    assert welcome["message_thread_id"] == ivan.topic
    farewell = await world.in_staff(
        lambda m: f"Merged into contact #{ivan.contact_id}" in text_of(m)
    )
    assert farewell["message_thread_id"] == second["message_thread_id"]

    async def closed() -> bool:
        return any(
            t["message_thread_id"] == second["message_thread_id"] and t.get("closed")
            for t in world.emulator.topics(STAFF_CHAT)
        )

    await eventually(closed)
    again = await api.post(path, {"contact_id": other}, headers={"Idempotency-Key": "m-1"})
    assert again["absorbed"] == other  # a retry is harmless
    gone = await api.get(f"/contacts/{other}")
    assert gone["merged_into"] == ivan.contact_id
    assert (await api.get(f"/contacts/{ivan.contact_id}"))["absorbed"] == [other]
    listed = await api.get("/contacts", params={"limit": "10"})
    assert other not in [c["id"] for c in listed["items"]]
    listed = await api.get("/contacts", params={"limit": "10", "include_merged": "true"})
    assert other in [c["id"] for c in listed["items"]]
    assert (await api.get("/contacts", params={"name": "ivan_p"}))["items"][0]["id"] == (
        ivan.contact_id  # a search answers the person, as /find does
    )
    for body, status, code in (
        ({"contact_id": ivan.contact_id}, 400, "invalid_request"),  # itself
        ({"contact_id": "999"}, 404, "not_found"),
        ({"contact_id": "x"}, 400, "invalid_request"),
        ({"contact_id": other, "extra": 1}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
    ):
        code_, answer = await api.call("POST", path, json=body)
        assert (code_, answer["error"]["code"]) == (status, code), (body, answer)
    status, answer = await api.call("POST", f"/contacts/{other}/merge", json={"contact_id": "2"})
    assert status == 409 and "already merged" in answer["error"]["message"]

    # Unmerge: the support identity goes back to the contact it came from.
    split = await api.post(f"/contacts/{ivan.contact_id}/unmerge", {"identity": "tg_support"})
    assert split["split"]["id"] == other and split["split"]["merged_into"] is None
    assert [i["account"] for i in split["contact"]["identities"]] == ["tg_shop"]
    told = await world.in_staff(lambda m: "is split out into contact" in text_of(m))
    assert told["message_thread_id"] == ivan.topic and "(by api:crm)" in text_of(told)
    await world.in_staff(
        lambda m: text_of(m).startswith(f"↩️ Split out of contact #{ivan.contact_id}")
    )
    for body, status in (
        ({"identity": "tg_support"}, 400),  # not one of its messengers any more
        ({"identity": "tg_shop"}, 409),  # its only messenger
        ({"identity": ""}, 400),
    ):
        code_, answer = await api.call("POST", f"/contacts/{ivan.contact_id}/unmerge", json=body)
        assert code_ == status, answer
    code_, answer = await api.call("POST", "/contacts/999/unmerge", json={"identity": "tg_shop"})
    assert code_ == 404
    # Events record the API client as the actor.
    events = await api.running.redis.xrange("gw:events")
    merges = [f for _, f in events if f[b"type"] == b"contact.merged"]
    assert [f[b"actor"] for f in merges] == [b"api:crm"]
