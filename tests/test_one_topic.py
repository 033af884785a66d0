"""One topic per contact per line, whatever the concurrency (issue 10): new customers'
first messages arrive at the same moment on two replicas (their webhooks split between
them) and each customer still gets exactly one topic, holding all their messages."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import aiohttp

from tests.conftest import STAFF_CHAT, StartGateway, World, eventually, text_of
from tests.test_export import _settled
from tests.test_reliability import HEADERS, update

CUSTOMERS = 12
EACH = 3


async def test_concurrent_first_messages_on_two_replicas_make_one_topic(
    world: World, start_gateway: StartGateway
) -> None:
    first, second = await start_gateway(), await start_gateway()
    bodies = []
    for n in range(CUSTOMERS):
        user = world.customer(f"Cust{n:02d}", None)["id"]
        for m in range(EACH):
            body = update(1000 + n * EACH + m, f"c{n:02d}-m{m}", user)
            body["message"]["message_id"] = m + 1  # each customer's chat numbers its own
            bodies.append(body)

    async with aiohttp.ClientSession() as http:

        async def post(replica_url: str, body: dict[str, object]) -> int:
            url = f"{replica_url}/webhook/telegram/tg_shop"
            async with http.post(url, data=json.dumps(body), headers=HEADERS) as response:
                return response.status

        answers = await asyncio.gather(
            *(post((first, second)[i % 2].url, body) for i, body in enumerate(bodies))
        )
    assert set(answers) == {200}

    def posted() -> list[str]:
        return [text_of(m) for m in world.emulator.messages(STAFF_CHAT) if "-m" in text_of(m)]

    await eventually(lambda: len(posted()) == CUSTOMERS * EACH, timeout=30)
    await _settled(first)
    topics = world.emulator.topics(STAFF_CHAT)
    assert len(topics) == CUSTOMERS, [t["name"] for t in topics]
    holders: Counter[tuple[str, int]] = Counter()
    for message in world.emulator.messages(STAFF_CHAT):
        said = text_of(message)
        if "-m" in said:
            holders[(said[:3], int(message["message_thread_id"]))] += 1
    assert sorted(holders.values()) == [EACH] * CUSTOMERS  # each customer: one topic, all 3
