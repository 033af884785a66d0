"""``/api/v1/webhooks/dead``: a CRM that refused a delivery for good; an admin lists it,
replays it (delivered once the CRM accepts) and discards others — over HTTP, admin
scope only."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import ADMIN_TOKEN, CRM_TOKEN, Api, StartApi
from tests.conftest import World, eventually, text_of
from tests.test_crm_webhooks import FAST, Receiver, hooks, receiver  # noqa: F401 - fixture


async def dead(api: Api, **params: Any) -> dict[str, Any]:
    return await api.get("/webhooks/dead", token=ADMIN_TOKEN, params=params)  # type: ignore[no-any-return]


async def test_dead_letters_are_listed_replayed_and_discarded(
    world: World,
    start_api: StartApi,
    receiver: Receiver,  # noqa: F811 - the fixture imported above
) -> None:
    refusing = {"on": True}
    receiver.rule = lambda target, body, tries: "400" if refusing["on"] else "ok"
    api = await start_api(tweak=hooks(receiver))
    api.running.app.webhooks.policy = FAST
    ivan = world.customer("Ivan", None)
    await world.say(ivan, text="hi")
    await world.in_staff(lambda m: text_of(m) == "hi")
    await eventually(lambda: _count(api, 3), timeout=15)

    page = await dead(api, target="crm", limit=2)
    assert len(page["items"]) == 2 and page["next_cursor"] is not None
    first = page["items"][0]
    assert first["target"] == "crm" and first["error"].startswith("HTTP 400")
    assert first["payload"]["type"] == "process.opened"
    rest = await dead(api, cursor=page["next_cursor"], limit=500)
    ids = [d["id"] for d in page["items"] + rest["items"]]

    refusing["on"] = False
    moved = await api.post("/webhooks/dead/replay", {"ids": ids[:2]}, token=ADMIN_TOKEN, expect=200)
    assert moved == {"done": ids[:2], "missing": []}
    await eventually(lambda: set(ids[:2]) <= set(receiver.ids("crm")))
    gone = await api.post(
        "/webhooks/dead/discard", {"ids": [*ids[2:], "crm:nope"]}, token=ADMIN_TOKEN
    )
    assert gone["missing"] == ["crm:nope"] and (await dead(api))["items"] == []

    # Only admins; bad requests are 400/404, not 500.
    status, _ = await api.call("GET", "/webhooks/dead", token=CRM_TOKEN)
    assert status == 403
    for body in ({}, {"ids": ["a"], "target": "crm"}, {"ids": []}):
        status, answer = await api.call(
            "POST", "/webhooks/dead/replay", json=body, token=ADMIN_TOKEN
        )
        assert status == 400, answer
    status, _ = await api.call(
        "POST", "/webhooks/dead/replay", json={"target": "nope"}, token=ADMIN_TOKEN
    )
    assert status == 404
    status, _ = await api.call("GET", "/webhooks/dead?cursor=x", token=ADMIN_TOKEN)
    assert status == 400


async def _count(api: Api, at_least: int) -> bool:
    page = await dead(api, limit=500)
    return len(page["items"]) >= at_least
