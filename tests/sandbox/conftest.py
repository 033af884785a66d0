"""Fixtures of the Viber emulator's tests (named so that they stand apart from the other
emulators' module fixtures): ``viber`` an emulator with two bots, ``bot_server`` the bot's
server, ``viber_api`` a viberbot-like client, ``viber_http`` a plain client session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.sandbox.viber import ViberEmulator
from tests.sandbox.viber_kit import OTHER, TOKEN, Api, Webhook


@pytest.fixture
async def viber() -> AsyncIterator[ViberEmulator]:
    emulator = ViberEmulator(callback_backoff=0.01, media_timeout=2.0)
    emulator.create_bot(TOKEN, "Shop")
    emulator.create_bot(OTHER, "Other")
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def viber_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def bot_server() -> AsyncIterator[Webhook]:
    server = Webhook()
    yield server
    server.stalled.set()
    if server.runner is not None:
        await server.runner.cleanup()
    assert server.bad_signatures == 0


@pytest.fixture
def viber_api(viber: ViberEmulator, viber_http: aiohttp.ClientSession) -> Api:
    assert viber.base_url is not None
    return Api(viber_http, viber.base_url)
