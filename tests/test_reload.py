"""Reloading the configuration of a running gateway (SIGHUP, ``gateway reload``):
invalid files refused with their YAML paths, restart-only settings refused, accounts
added and removed, changed settings applied at once — and no message lost or doubled
while it happens."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.cli import main as cli_main
from gateway.reload import Reloader
from tests.conftest import (
    CUSTOMER_TOKEN,
    STAFF_CHAT,
    WEBHOOK_SECRET,
    Running,
    StartGateway,
    World,
    eventually,
    text_of,
)

SECOND_TOKEN = "3003:second-bot-token-cccccccccccccccccccc"


async def started(start_gateway: StartGateway, tmp_path: Path) -> tuple[Running, dict[str, Any]]:
    """A gateway and the config it runs, as a dict that the tests edit and write."""
    captured: dict[str, Any] = {}
    running = await start_gateway(tweak=lambda data: captured.update(data=data))
    return running, copy.deepcopy(captured["data"])


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def test_an_invalid_file_is_refused_and_the_running_config_stays(
    world: World, start_gateway: StartGateway, tmp_path: Path
) -> None:
    running, data = await started(start_gateway, tmp_path)
    data["channels"][0]["greeting"] = ""  # too short
    data["sla"] = {"respond_within_minutes": "soon"}
    reloader = Reloader(running.app, write(tmp_path / "bridge_config.yaml", data))

    outcome = await reloader.reload()

    assert not outcome.applied
    paths = {path for path, _ in outcome.errors}
    assert {"channels[0].greeting", "sla.respond_within_minutes"} <= paths
    told = await world.in_staff(lambda m: "NOT reloaded" in text_of(m))
    assert "channels[0].greeting" in text_of(told)
    assert running.app.settings.channels[0].greeting is None
    ivan = world.customer()
    await world.say(ivan, text="still working?")
    await world.in_staff(lambda m: text_of(m) == "still working?")


async def test_not_yaml_at_all_is_refused(
    world: World, start_gateway: StartGateway, tmp_path: Path
) -> None:
    running, _ = await started(start_gateway, tmp_path)
    path = tmp_path / "bridge_config.yaml"
    path.write_text("channels: [\n", encoding="utf-8")
    outcome = await Reloader(running.app, path).reload()
    assert not outcome.applied and "line" in outcome.errors[0][0]


async def test_settings_of_the_process_itself_need_a_restart(
    world: World, start_gateway: StartGateway, tmp_path: Path
) -> None:
    running, data = await started(start_gateway, tmp_path)
    data["server"]["listen"] = "127.0.0.1:9"
    data["bus"]["partitions"] = 8
    outcome = await Reloader(running.app, write(tmp_path / "c.yaml", data)).reload()
    assert not outcome.applied
    assert "server" in outcome.message and "bus" in outcome.message
    assert running.app.settings.bus.partitions == 4


async def test_changes_apply_at_once(
    world: World, start_gateway: StartGateway, tmp_path: Path
) -> None:
    running, data = await started(start_gateway, tmp_path)
    data["channels"][0]["greeting"] = "Welcome to the new shop!"
    outcome = await Reloader(running.app, write(tmp_path / "c.yaml", data)).reload()
    assert outcome.applied and outcome.changed == ("tg_shop",)
    await world.in_staff(lambda m: "Configuration reloaded" in text_of(m))

    ivan = world.customer()
    await world.say(ivan, text="hi")
    greeting = await world.in_private(ivan, lambda m: "new shop" in text_of(m))
    assert text_of(greeting) == "Welcome to the new shop!"


async def test_accounts_are_added_and_removed(
    world: World, start_gateway: StartGateway, tmp_path: Path
) -> None:
    running, data = await started(start_gateway, tmp_path)
    world.emulator.set_bot_username(SECOND_TOKEN, "second_bot")
    second = copy.deepcopy(data["channels"][0])
    second.update(id="tg_second", token=SECOND_TOKEN)
    data["channels"] = [second]
    outcome = await Reloader(running.app, write(tmp_path / "c.yaml", data)).reload()
    assert outcome.applied
    assert outcome.added == ("tg_second",) and outcome.removed == ("tg_shop",)

    petr = world.customer("Petr", "petr")
    await world.emulator.user_sends(petr["id"], bot_token=SECOND_TOKEN, text="via the new bot")
    await world.in_staff(lambda m: text_of(m) == "via the new bot")
    # The removed account takes no webhooks any more.
    async with aiohttp.ClientSession() as http:
        url = f"{running.url}/webhook/telegram/tg_shop"
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        async with http.post(url, json={"update_id": 1}, headers=headers) as response:
            assert response.status == 404


async def test_nothing_is_lost_or_doubled_while_reloading(
    world: World, start_gateway: StartGateway, tmp_path: Path
) -> None:
    running, data = await started(start_gateway, tmp_path)
    reloader = Reloader(running.app, write(tmp_path / "c.yaml", data))
    customers = [world.customer(f"C{n}", f"c{n}") for n in range(4)]

    async def talk(user: dict[str, Any]) -> None:
        for n in range(15):
            await world.say(user, text=f"{user['first_name']} #{n}")

    async def reload_repeatedly() -> None:
        for n in range(3):
            data["channels"][0]["greeting"] = f"Hello, version {n}"
            write(reloader.path, data)
            assert (await reloader.reload()).applied
            await asyncio.sleep(0.05)

    await asyncio.gather(*(talk(c) for c in customers), reload_repeatedly())

    expected = {f"C{c} #{n}" for c in range(4) for n in range(15)}

    def arrived() -> list[str]:
        return [text_of(m) for m in world.staff_messages() if text_of(m) in expected]

    await eventually(lambda: set(arrived()) == expected, timeout=30)
    await asyncio.sleep(0.5)
    assert len(arrived()) == len(expected)  # none twice
    for c in range(4):  # and each customer's in order
        mine = [t for t in arrived() if t.startswith(f"C{c} #")]
        assert mine == [f"C{c} #{n}" for n in range(15)]


async def test_the_reload_command_reaches_every_replica(
    world: World, start_gateway: StartGateway, tmp_path: Path
) -> None:
    first, data = await started(start_gateway, tmp_path)
    second = await start_gateway()  # another replica on the same Redis
    data["channels"][0]["greeting"] = "Greeting from gateway reload"
    path = write(tmp_path / "c.yaml", data)
    listeners = [
        asyncio.create_task(Reloader(running.app, path).listen()) for running in (first, second)
    ]
    try:
        await eventually(lambda: _subscribers(first), timeout=5)
        code = await asyncio.to_thread(cli_main, ["reload", "--config", str(path)])
        assert code == 0
        for running in (first, second):
            await eventually(lambda r=running: r.app.settings.channels[0].greeting is not None)
            assert running.app.settings.channels[0].greeting == "Greeting from gateway reload"
    finally:
        for task in listeners:
            task.cancel()


async def _subscribers(running: Running) -> bool:
    counts = await running.redis.pubsub_numsub("gw:reload")
    return bool(counts) and counts[0][1] == 2


async def test_sighup_reloads(world: World, start_gateway: StartGateway, tmp_path: Path) -> None:
    running, data = await started(start_gateway, tmp_path)
    data["channels"][0]["greeting"] = "Greeting from SIGHUP"
    Reloader(running.app, write(tmp_path / "c.yaml", data)).install_signal()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: running.app.settings.channels[0].greeting is not None)
        assert running.app.settings.channels[0].greeting == "Greeting from SIGHUP"
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


def test_reload_without_a_running_gateway_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "nothing"),
                "staff": {"token": "1:a", "chat_id": STAFF_CHAT},
                "channels": [{"id": "tg", "kind": "telegram", "token": CUSTOMER_TOKEN}],
            }
        ),
        encoding="utf-8",
    )
    assert cli_main(["reload", "--config", str(config)]) == 1
    assert "no running gateway" in capsys.readouterr().err


async def test_new_delivery_limits_reach_every_adapter(
    world: World, start_gateway: StartGateway, tmp_path: Path
) -> None:
    running, data = await started(start_gateway, tmp_path)
    app = running.app
    staff, shop = app.staff, app.customers["tg_shop"]
    data["delivery"]["request_timeout_seconds"] = 7
    outcome = await Reloader(app, write(tmp_path / "c.yaml", data)).reload()
    assert outcome.applied
    # Adapters hold the limits they were built with: all of them are new.
    assert app.staff is not staff and app.customers["tg_shop"] is not shop

    ivan = world.customer()
    await world.say(ivan, text="after new limits")
    posted = await world.in_staff(lambda m: text_of(m) == "after new limits")
    await world.operator_says(posted["message_thread_id"], text="answered")
    await world.in_private(ivan, lambda m: text_of(m) == "answered")
