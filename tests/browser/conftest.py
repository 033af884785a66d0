"""Fixtures of the headless-browser tests: the real sandbox (``gateway sandbox`` in a
child process, with an admin token in its config), a real Chromium driven by
Playwright, and a place for screenshots.

Nothing here is skipped: without Chromium the tests fail and say how to install it.
Screenshots go to ``$GATEWAY_ARTIFACTS`` (default ``test-artifacts/``), one set per
test, the last one taken when the test ends (passed or not).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    async_playwright,
    expect,
)
from playwright.async_api import (
    Error as PlaywrightError,
)

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "browser-admin-token-0123456789abcdef"
READER_TOKEN = "browser-reader-token-0123456789abcdef"
STAFF_INTERNAL_CHAT = "9000000001"
"""The sandbox's staff group (-1009000000001) as t.me/c links write it."""
expect.set_options(timeout=15_000)  # a message crosses the gateway and the emulators
INSTALL_HINT = (
    "the browser tests need Chromium: on Debian/Ubuntu `sudo apt-get install -y chromium` "
    "(.ci/run does it), or point GATEWAY_CHROMIUM at a Chromium/Chrome binary"
)


def chromium_path() -> str:
    configured = os.environ.get("GATEWAY_CHROMIUM")
    found = configured or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not os.access(found, os.X_OK):
        pytest.fail(f"no Chromium found ({configured or 'chromium not on PATH'}): {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class Sandbox:
    url: str
    log: Path

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """``gateway sandbox --fresh`` on a free port, as a user runs it (one for the session:
    tests use customers of their own and compare counts before and after)."""
    base = tmp_path_factory.mktemp("sandbox")
    config = yaml.safe_load((ROOT / "bridge_config.yaml").read_text(encoding="utf-8"))
    config["api"] = {
        "tokens": [
            {"name": "boss", "token": ADMIN_TOKEN, "scopes": ["admin"]},
            {"name": "crm", "token": READER_TOKEN, "scopes": ["read"]},
        ]
    }
    # The staff group's budget (20 messages a minute) would make every new customer's
    # topic wait: the tests write as several customers within seconds.
    config.setdefault("delivery", {})["flood_limits"] = False
    (base / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = base / "sandbox.log"
    gateway = Path(sys.executable).with_name("gateway")
    with log.open("wb") as out:
        child = subprocess.Popen(
            [
                str(gateway),
                "sandbox",
                "-c",
                str(base / "config.yaml"),
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(base / "data"),
                "--fresh",
            ],
            cwd=base,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Sandbox(f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(running, child)
        yield running
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_ready(sandbox: Sandbox, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            pytest.fail(f"the sandbox exited with {child.returncode}:\n{sandbox.tail()}")
        try:
            if requests.get(f"{sandbox.url}/readyz", timeout=2).json().get("live"):
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.2)
    pytest.fail(f"the sandbox was not ready within 60 s:\n{sandbox.tail()}")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(os.environ.get("GATEWAY_ARTIFACTS", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(
    browser: Browser, artifacts: Path, request: pytest.FixtureRequest
) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile; every page it has open is photographed at the end."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        for n, page in enumerate(ctx.pages):
            try:
                await page.screenshot(
                    path=artifacts / f"{request.node.name}-end-{n}.png", full_page=True
                )
            except PlaywrightError as exc:  # a crashed page: the test's own failure says more
                print(f"no end screenshot of page {n}: {exc}")
        await ctx.close()


async def shot(page: Page, artifacts: Path, name: str) -> None:
    await page.screenshot(path=artifacts / f"{name}.png", full_page=True)
