"""Chaos for VK, Viber and WhatsApp: their sending calls fail at random, at a rate.

Each emulator has the fault rate mode the Telegram emulator has (``set_fault_rate``,
``POST /_control/fault_rate``), answered the way that platform answers: VK error objects
in HTTP 200 answers (6, 10) or a proxy's 5xx page, Viber status 12 or a 5xx page,
WhatsApp Graph errors with an HTTP error status (130429, 131000, 2) or a 5xx page; plus
late answers and dropped connections. An operator answers a series of replies in the
staff group; every reply must reach the customer exactly once and in order, and the
gateway must have counted the retries the faults caused. The draws are seeded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from gateway.sandbox.common.faults import RANDOM_KINDS
from gateway.sandbox.viber import ViberEmulator
from gateway.sandbox.vk import VkEmulator
from gateway.sandbox.whatsapp import WhatsAppEmulator
from tests.conftest import Running, StartGateway, World, eventually, text_of

pytestmark = pytest.mark.timeout(60)

RATE = 0.3
REPLIES = 20
SEED = 20261172
"""Its first 20 draws at 30% are six faults, one of each kind."""
VIBER_SEED = 20261112
"""Its first 20 draws at 30% without "429" are six faults, of the five kinds."""
FAILING = ("429", "500", "502", "503", "reset")
"""The kinds the client sees fail at once (a delay fails only past its timeout)."""

VK_GROUP = 229000001
VK_TOKEN = "vk1.a.chaos-token"
VK_SECRET = "vk-callback-secret"
VIBER_TOKEN = "4f1b2c3d4e5f6a7b-viber-chaos-token"
WA_NUMBER = "106540352242922"
WA_TOKEN = "EAAG-wa-chaos-token"
WA_SECRET = "wa-app-secret"

Emulator = VkEmulator | ViberEmulator | WhatsAppEmulator


async def started(platform: str) -> Emulator:
    """A started emulator of ``platform`` with the account the tests use."""
    emulator: Emulator
    if platform == "vk":
        emulator = VkEmulator()
        await emulator.start()
        emulator.create_group(VK_GROUP, VK_TOKEN, "Shop", confirmation="c0nf1rm")
    elif platform == "viber":
        emulator = ViberEmulator()
        await emulator.start()
        emulator.create_bot(VIBER_TOKEN, "Shop")
    else:
        emulator = WhatsAppEmulator()
        await emulator.start()
        emulator.create_number(WA_NUMBER, "15550783881", WA_TOKEN, app_secret=WA_SECRET)
    return emulator


@pytest.fixture
async def vk() -> AsyncIterator[VkEmulator]:
    emulator = await started("vk")
    assert isinstance(emulator, VkEmulator)
    yield emulator
    await emulator.stop()


@pytest.fixture
async def viber() -> AsyncIterator[ViberEmulator]:
    emulator = await started("viber")
    assert isinstance(emulator, ViberEmulator)
    yield emulator
    await emulator.stop()


@pytest.fixture
async def wa() -> AsyncIterator[WhatsAppEmulator]:
    emulator = await started("whatsapp")
    assert isinstance(emulator, WhatsAppEmulator)
    yield emulator
    await emulator.stop()


@pytest.fixture(params=["vk", "viber", "whatsapp"])
async def platform(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Emulator]]:
    """Each platform's emulator in turn: ``(name, emulator)``."""
    emulator = await started(request.param)
    yield request.param, emulator
    await emulator.stop()


def add_channel(data: dict[str, Any], **account: Any) -> None:
    data["channels"].append(account)


async def retries(running: Running, channel: str) -> float:
    """``gateway_outbound_retries_total`` of one channel, from ``GET /metrics``."""
    async with aiohttp.ClientSession() as http, http.get(f"{running.url}/metrics") as response:
        body = await response.text()
    total = 0.0
    for line in body.splitlines():
        if line.startswith("gateway_outbound_retries_total{") and f'channel="{channel}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def operator_replies(world: World, topic: int, tag: str, count: int = REPLIES) -> list[str]:
    texts = [f"{tag} reply {i:02d}" for i in range(count)]
    for text in texts:
        await world.operator_says(topic, text=text)
    return texts


def saying(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: text_of(message) == text


def report(name: str, elapsed: float, injected: dict[tuple[str, str], int], counted: float) -> None:
    print(
        f"\n{name}: {REPLIES} replies at {RATE:.0%} faults in {elapsed:.1f} s; injected "
        f"{sum(injected.values())} {dict(injected)}; retries counted {counted:.0f}"
    )


# --- the gateway under faults ----------------------------------------------------------------


async def test_vk_replies_arrive_once_and_in_order_under_faults(
    world: World, start_gateway: StartGateway, vk: VkEmulator
) -> None:
    """VK: every kind, with late answers past the client's 1 s timeout: the send was done,
    the retry carries the same ``random_id``, and VK sends nothing twice."""

    def tweak(data: dict[str, Any]) -> None:
        data["delivery"]["request_timeout_seconds"] = 1
        add_channel(
            data,
            id="vk_shop",
            kind="vk",
            token=VK_TOKEN,
            group_id=VK_GROUP,
            api_server=vk.base_url,
            mode="webhook",
            secret=VK_SECRET,
        )

    running = await start_gateway(tweak=tweak)
    await eventually(lambda: any(s["status"] == "ok" for s in vk.callback_servers(VK_GROUP)))
    ivan = vk.create_user("Иван", "Петров")
    vk.user_send(VK_GROUP, ivan, "Здравствуйте")
    await world.in_staff(lambda m: text_of(m) == "Здравствуйте")
    topic = world.topic_of("Иван Петров · VK")

    vk.set_fault_rate(RATE, methods=["messages.send"], delay=1.5, seed=SEED)
    started = time.monotonic()
    texts = await operator_replies(world, topic, "vk")

    def sent() -> list[str]:
        return [m["text"] for m in vk.conversation(VK_GROUP, ivan) if m["out"] == 1]

    await eventually(lambda: len(sent()) >= REPLIES, timeout=45)
    vk.clear_fault_rates()
    counted = await retries(running, "vk")
    report("vk", time.monotonic() - started, dict(vk.faults.random.injected), counted)
    assert sent() == texts  # each exactly once, in order
    assert {kind for _, kind in vk.faults.random.injected} == set(RANDOM_KINDS)
    # Every fault was retried, a late answer too (then VK dropped the repeated
    # random_id); ≥: a call the loaded machine made late is one more.
    assert counted >= vk.injected_faults(["messages.send"])


async def test_viber_replies_arrive_once_and_in_order_under_faults(
    world: World, start_gateway: StartGateway, viber: ViberEmulator
) -> None:
    """Viber: 5xx pages, dropped connections and late answers (within the client's
    timeout: the REST API has no idempotency key). Status 12 is left out: the adapter
    waits 60 s after one, longer than this test may take."""

    def tweak(data: dict[str, Any]) -> None:
        add_channel(
            data,
            id="viber_shop",
            kind="viber",
            token=VIBER_TOKEN,
            name="Shop",
            api_server=viber.base_url,
        )

    running = await start_gateway(tweak=tweak)
    olga = viber.create_user("Olga Ivanova")
    viber.user_send(VIBER_TOKEN, olga, "Здравствуйте")
    await world.in_staff(lambda m: text_of(m) == "Здравствуйте")
    topic = world.topic_of("Olga Ivanova · Viber")

    kinds = [kind for kind in RANDOM_KINDS if kind != "429"]
    viber.set_fault_rate(RATE, endpoints=["send_message"], kinds=kinds, delay=0.3, seed=VIBER_SEED)
    started = time.monotonic()
    texts = await operator_replies(world, topic, "viber")

    def sent() -> list[str]:
        out = viber.conversation(VIBER_TOKEN, olga)
        return [m["text"] for m in out if m["direction"] == "out" and m["text"]]

    await eventually(lambda: len(sent()) >= REPLIES, timeout=45)
    viber.clear_fault_rates()
    counted = await retries(running, "viber")
    report("viber", time.monotonic() - started, dict(viber.faults.random.injected), counted)
    assert sent() == texts
    assert {kind for _, kind in viber.faults.random.injected} == set(kinds)
    # Each failure was retried once; a late answer within the timeout is no failure.
    assert counted == viber.injected_faults(["send_message"], FAILING)


async def test_whatsapp_replies_arrive_once_and_in_order_under_faults(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator
) -> None:
    """WhatsApp: every kind on the messages endpoint (sends and read marks), late answers
    within the client's timeout (no idempotency key). The replies go to four customers:
    the gateway paces one customer to about one message in 6 s after a burst of 5, as
    Meta's pair rate limit (131056) requires."""
    customers, per_customer = 4, REPLIES // 4

    def tweak(data: dict[str, Any]) -> None:
        add_channel(
            data,
            id="wa_shop",
            kind="whatsapp",
            token=WA_TOKEN,
            phone_number_id=WA_NUMBER,
            app_secret=WA_SECRET,
            verify_token="wa-verify-token",
            api_server=wa.base_url,
        )

    running = await start_gateway(tweak=tweak)
    people = [wa.create_user(f"Client {c}", f"7916123450{c}") for c in range(customers)]
    topics = []
    for c, wa_id in enumerate(people):
        wa.user_send(WA_NUMBER, wa_id, f"Здравствуйте {c}")
        await world.in_staff(saying(f"Здравствуйте {c}"))
        topics.append(world.topic_of(f"Client {c} · WhatsApp"))

    wa.set_fault_rate(RATE, endpoints=["messages"], delay=0.3, seed=SEED)
    started = time.monotonic()
    expected: dict[str, list[str]] = {wa_id: [] for wa_id in people}
    for i in range(per_customer):
        for c, wa_id in enumerate(people):
            expected[wa_id] += await operator_replies(world, topics[c], f"wa{c}-{i}", 1)

    def sent(wa_id: str) -> list[str]:
        out = wa.conversation(WA_NUMBER, wa_id)
        return [m["body"] for m in out if m["direction"] == "out" and m.get("body")]

    await eventually(lambda: all(len(sent(wa_id)) >= per_customer for wa_id in people), timeout=45)
    wa.clear_fault_rates()
    counted = await retries(running, "whatsapp")
    report("whatsapp", time.monotonic() - started, dict(wa.faults.random.injected), counted)
    for wa_id in people:
        assert sent(wa_id) == expected[wa_id]
    assert {kind for _, kind in wa.faults.random.injected} == set(RANDOM_KINDS)
    assert counted == wa.injected_faults(["messages"], FAILING)  # read marks' too


# --- the emulators' fault rate mode ---------------------------------------------------------


async def post_json(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def vk_call(
    http: aiohttp.ClientSession, vk: VkEmulator, method: str, **params: Any
) -> tuple[int, Any]:
    """One VK API call: the HTTP status and the JSON answer (``None``: not JSON)."""
    form = {"access_token": VK_TOKEN, "v": "5.199", **{k: str(v) for k, v in params.items()}}
    async with http.post(f"{vk.base_url}/method/{method}", data=form) as response:
        if response.content_type != "application/json":
            return response.status, None
        return response.status, await response.json()


async def test_vk_random_faults_answer_as_vk_does(vk: VkEmulator) -> None:
    ivan = vk.create_user("Иван")
    vk.user_send(VK_GROUP, ivan, "hi")
    control = f"{vk.base_url}/_control/fault_rate"
    async with aiohttp.ClientSession() as http:

        async def send(random_id: int) -> tuple[int, Any]:
            return await vk_call(
                http, vk, "messages.send", peer_id=ivan, random_id=random_id, message="late"
            )

        rule = {"probability": 1.0, "methods": ["Messages.Send"], "kinds": ["429"], "seed": 1}
        status, answer = await post_json(http, control, rule)
        assert status == 200 and answer["rates"][0]["methods"] == ["messages.send"]
        status, answer = await send(1)
        assert status == 200 and answer["error"]["error_code"] == 6
        assert answer["error"]["error_msg"] == "Too many requests per second"
        vk.set_fault_rate(1.0, methods=["messages.send"], kinds=["500"])
        status, answer = await send(2)
        assert status == 200 and answer["error"]["error_code"] == 10
        assert answer["error"]["error_msg"] == "Internal server error"
        vk.set_fault_rate(1.0, methods=["messages.send"], kinds=["503"], group_id=VK_GROUP)
        assert await send(3) == (503, None)  # a proxy's HTML page
        vk.set_fault_rate(1.0, methods=["messages.send"], kinds=["reset"])
        with pytest.raises(aiohttp.ClientError):
            await send(4)
        vk.set_fault_rate(1.0, methods=["messages.send"], kinds=["delay"], delay=0.3)
        started = time.monotonic()
        status, answer = await send(5)
        assert "response" in answer and time.monotonic() - started >= 0.3  # late, and done
        status, answer = await vk_call(http, vk, "users.get", user_ids=ivan)
        assert "response" in answer  # another method: untouched
        status, answer = await post_json(http, control, {"clear": True})
        assert (status, answer["rates"], answer["injected"]) == (200, [], 5)
        assert answer["injected_by_kind"] == dict.fromkeys(
            ["429", "500", "503", "reset", "delay"], 1
        )
    assert [m["text"] for m in vk.conversation(VK_GROUP, ivan) if m["out"]] == ["late"]
    assert vk.injected_faults(["messages.send"], ["429", "500"]) == 2


async def test_viber_random_faults_answer_as_viber_does(viber: ViberEmulator) -> None:
    viber.world.require_webhook = False  # no gateway here to set one
    olga = viber.create_user("Olga")
    viber.user_send(VIBER_TOKEN, olga, "hi")
    url = f"{viber.base_url}/send_message"
    message: dict[str, Any] = {"auth_token": VIBER_TOKEN, "receiver": olga, "type": "text"}
    message |= {"text": "hello", "sender": {"name": "Shop"}}
    bot_id = viber.bot_id(VIBER_TOKEN)
    async with aiohttp.ClientSession() as http:
        rule: dict[str, Any] = {"probability": 1.0, "endpoints": ["send_message"]}
        rule |= {"kinds": ["429"], "bot_id": bot_id}
        status, answer = await post_json(http, f"{viber.base_url}/_control/fault_rate", rule)
        assert status == 200 and answer["rates"][0]["bot_id"] == bot_id
        assert await post_json(http, url, message) == (
            200,
            {"status": 12, "status_message": "tooManyRequests", "details": "too many requests"},
        )
        viber.set_fault_rate(1.0, endpoints=["send_message"], kinds=["502"])
        async with http.post(url, json=message) as response:
            assert response.status == 502
        viber.set_fault_rate(1.0, endpoints=["send_message"], kinds=["reset"])
        with pytest.raises(aiohttp.ClientError):
            async with http.post(url, json=message) as response:
                await response.read()
        viber.clear_fault_rates()
        status, answer = await post_json(http, url, message)
        assert answer["status"] == 0
    assert viber.injected_faults() == 3
    # Recorded: status 12, then two calls that never got a Viber answer, then a success.
    assert [c.status for c in viber.calls if c.endpoint == "send_message"] == [12, None, None, 0]


async def test_whatsapp_random_faults_answer_as_the_cloud_api_does(wa: WhatsAppEmulator) -> None:
    ivan = wa.create_user("Ivan", "79161234567")
    wa.user_send(WA_NUMBER, ivan, "hi")
    url = f"{wa.base_url}/v21.0/{WA_NUMBER}/messages"
    headers = {"Authorization": f"Bearer {WA_TOKEN}"}
    message = {"messaging_product": "whatsapp", "to": ivan, "type": "text", "text": {"body": "x"}}
    expected = {"429": (429, 130429), "500": (500, 131000), "503": (503, 2)}
    async with aiohttp.ClientSession() as http:
        for kind, (http_status, code) in expected.items():
            wa.set_fault_rate(1.0, endpoints=["messages"], kinds=[kind], phone_number_id=WA_NUMBER)
            async with http.post(url, json=message, headers=headers) as response:
                assert response.status == http_status
                error = (await response.json())["error"]
            assert error["code"] == code and error["type"] == "OAuthException"
            assert error["message"].startswith(f"(#{code}) ") and error["fbtrace_id"]
        wa.set_fault_rate(1.0, endpoints=["messages"], kinds=["502"])
        async with http.post(url, json=message, headers=headers) as response:
            assert response.status == 502 and "text/html" in response.headers["Content-Type"]
        wa.clear_fault_rates()
        wa.set_fault_rate(1.0, endpoints=["media_get"], kinds=["503"])
        async with http.post(url, json=message, headers=headers) as response:
            assert response.status == 200  # a rule of another endpoint
        wa.clear_fault_rates()
    assert wa.injected_faults(["messages"]) == 4


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "probability is required"),
        ({"probability": 2}, "probability must be within [0, 1]"),
        ({"probability": "0.5"}, "probability must be a number"),
        ({"probability": True}, "probability must be a number"),
        ({"probability": 0.5, "kinds": ["418"]}, "unknown fault kinds ['418']"),
        ({"probability": 0.5, "kinds": "429"}, "kinds must be a list"),
        ({"probability": 0.5, "kinds": []}, "kinds must not be empty"),
        ({"probability": 0.5, "retry_after": 0}, "retry_after must be at least 1"),
        ({"probability": 0.5, "delay": -1}, "delay must not be negative"),
        ({"probability": 0.5, "seed": "x"}, "seed must be an integer"),
        ({"probability": 0.5, "TARGETS": ["nope"]}, "unknown TARGETS ['nope']"),
        ({"probability": 0.5, "TARGETS": []}, "TARGETS must not be empty"),
        ({"probability": 0.5, "TARGET": ["x"]}, "unknown fields ['TARGET']"),
        ({"clear": False}, "clear must be true"),
        ({"clear": True, "probability": 1}, "clear takes no other fields"),
    ],
)
async def test_fault_rate_control_rejects_bad_input(
    platform: tuple[str, Emulator], body: dict[str, Any], error: str
) -> None:
    name, emulator = platform
    targets = "methods" if name == "vk" else "endpoints"
    body = {
        k.replace("TARGETS", targets).replace("TARGET", targets[:-1]): v for k, v in body.items()
    }
    error = error.replace("TARGETS", targets).replace("TARGET", targets[:-1])
    async with aiohttp.ClientSession() as http:
        status, answer = await post_json(http, f"{emulator.base_url}/_control/fault_rate", body)
        assert status == 400
        assert error in answer["error"]
        async with http.post(f"{emulator.base_url}/_control/fault_rate", data=b"{oops") as response:
            assert response.status == 400
            assert "JSON object" in (await response.json())["error"]
    assert emulator.faults.random.rates() == []  # nothing half-applied


@pytest.mark.parametrize(
    ("platform", "body", "error"),
    [
        ("vk", {"probability": 1, "group_id": 1}, "unknown community 1"),
        ("vk", {"probability": 1, "group_id": "229000001"}, "group_id must be an integer"),
        ("vk", {"probability": 1, "methods": ["<upload>"]}, "unknown methods ['<upload>']"),
        ("viber", {"probability": 1, "bot_id": "pa:1"}, "unknown bot 'pa:1'"),
        ("whatsapp", {"probability": 1, "phone_number_id": "1"}, "unknown phone number id '1'"),
        ("whatsapp", {"probability": 1, "endpoints": ["*"]}, "unknown endpoints ['*']"),
    ],
    indirect=["platform"],
)
async def test_fault_rate_control_rejects_unknown_owners_and_targets(
    platform: tuple[str, Emulator], body: dict[str, Any], error: str
) -> None:
    _, emulator = platform
    async with aiohttp.ClientSession() as http:
        status, answer = await post_json(http, f"{emulator.base_url}/_control/fault_rate", body)
    assert (status, error in answer["error"]) == (400, True), answer
    assert emulator.faults.random.rates() == []


async def test_the_same_seed_draws_the_same_faults(vk: VkEmulator, wa: WhatsAppEmulator) -> None:
    def draws(seed: int) -> list[str | None]:
        vk.set_fault_rate(0.3, methods=["messages.send"], seed=seed)
        return [
            d.kind if (d := vk.faults.random.draw("messages.send", VK_GROUP)) else None
            for _ in range(200)
        ]

    assert draws(5) == draws(5) != draws(6)
    assert 30 < sum(1 for kind in draws(5) if kind) < 90
    assert set(filter(None, draws(7))) == set(RANDOM_KINDS)
    wa.set_fault_rate(0.3, seed=5)  # the same generator on every emulator
    assert [
        d.kind if (d := wa.faults.random.draw("messages", WA_NUMBER)) else None for _ in range(200)
    ] == draws(5)


async def test_fault_rate_control_shows_the_rules_in_force(wa: WhatsAppEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        status, state = await post_json(
            http,
            f"{wa.base_url}/_control/fault_rate",
            {
                "probability": 0.25,
                "endpoints": ["Messages"],
                "phone_number_id": WA_NUMBER,
                "kinds": ["500", "reset"],
                "retry_after": 3,
                "delay": 0.5,
                "seed": 1,
            },
        )
    rule = {
        "probability": 0.25,
        "kinds": ["500", "reset"],
        "endpoints": ["messages"],
        "phone_number_id": WA_NUMBER,
        "retry_after": 3,
        "delay": 0.5,
    }
    assert (status, state["rates"]) == (200, [rule])
    async with aiohttp.ClientSession() as http, http.get(f"{wa.base_url}/_control/state") as got:
        assert (await got.json())["fault_rates"]["rates"] == [rule]
