"""The API's fixtures: a real gateway (``start_gateway``) with API tokens configured, and
a client that talks to it over HTTP with aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.conftest import Running, StartGateway, World, text_of

CRM_TOKEN = "crm-token-0123456789abcdef0123456789"
VIEWER_TOKEN = "viewer-token-0123456789abcdef01234567"
ADMIN_TOKEN = "admin-token-0123456789abcdef0123456789"
TOKENS = [
    {"name": "crm", "token": CRM_TOKEN, "scopes": ["read", "write"]},
    {"name": "viewer", "token": VIEWER_TOKEN, "scopes": ["read"]},
    {"name": "auditor", "token": ADMIN_TOKEN, "scopes": ["admin"]},
]
BORIS = 700002


def with_api(data: dict[str, Any]) -> None:
    data["api"] = {"tokens": TOKENS}


@dataclass
class Api:
    running: Running
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"{self.running.url}/api/v1"

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = CRM_TOKEN,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.base + path, json=json, headers=sent, **kwargs
        ) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json()

    async def get(self, path: str, **kwargs: Any) -> Any:
        """A GET that must succeed: its JSON."""
        status, body = await self.call("GET", path, **kwargs)
        assert status == 200, body
        return body

    async def post(self, path: str, json: Any = None, *, expect: int = 200, **kwargs: Any) -> Any:
        status, body = await self.call("POST", path, json=json, **kwargs)
        assert status == expect, body
        return body


StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api(start_gateway: StartGateway) -> AsyncIterator[StartApi]:
    """``await start_api(tweak=None, clock=None)``: a gateway with ``api.tokens``."""
    sessions: list[aiohttp.ClientSession] = []

    async def start(
        tweak: Callable[[dict[str, Any]], None] | None = None, clock: Any = None
    ) -> Api:
        def config(data: dict[str, Any]) -> None:
            with_api(data)
            if tweak is not None:
                tweak(data)

        running = await start_gateway(tweak=config, clock=clock)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Api(running, http)

    yield start
    for http in sessions:
        await http.close()


def with_boris(data: dict[str, Any]) -> None:
    """A second operator (in a ``sales`` role with Anna), and close reasons."""
    data["staff"]["operators"] = [
        {"id": 700001, "name": "Anna", "roles": ["sales"]},
        {"id": BORIS, "name": "Boris", "roles": ["sales"], "max_chats": 1},
    ]
    data["channels"][0] |= {"close_reasons": ["sold", "spam"]}


@dataclass
class Customer:
    user: dict[str, Any]
    contact_id: str
    topic: int


async def customer_writes(world: World, api: Api, name: str, text: str) -> Customer:
    """A customer writes to the shop's bot: them, their contact id (found through the
    API by name) and their topic."""
    user = world.customer(name, username=name.lower())
    await world.say(user, text=text)
    posted = await world.in_staff(lambda m: text_of(m) == text)
    found = await api.get("/contacts", params={"name": name})
    assert len(found["items"]) == 1, found
    return Customer(user, str(found["items"][0]["id"]), int(posted["message_thread_id"]))
