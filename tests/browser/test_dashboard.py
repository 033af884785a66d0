"""The admin dashboard in a real browser: signing in with the form, and a customer's
message typed in the console showing up on the dashboard by itself (live refresh):
inbound volume, the queue with a link to the Telegram topic, then the first-response
time once an operator answers."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import BrowserContext, Page, expect

from tests.browser.conftest import (
    ADMIN_TOKEN,
    READER_TOKEN,
    STAFF_INTERNAL_CHAT,
    Sandbox,
    shot,
)
from tests.browser.test_console import open_console, open_topic


async def sign_in(page: Page, sandbox: Sandbox, token: str) -> None:
    await page.goto(f"{sandbox.url}/admin")
    await expect(page).to_have_url(f"{sandbox.url}/admin/login")
    await page.fill("#token", token)
    await page.click("#sign-in")


async def number(page: Page, selector: str) -> int:
    return int(await page.locator(selector).inner_text())


async def first_responses(page: Page) -> int:
    """Today's first responses: the sum of today's row of the histogram's table."""
    cells = await page.locator("#frt tbody tr:first-child td").all_inner_texts()
    return sum(int(c) for c in cells)


async def until(read: Callable[[], Awaitable[int]], expected: int, timeout: float = 15) -> None:
    """Wait for the page (which refreshes itself) to show ``expected``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await read()) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value}, expected {expected}")
        await asyncio.sleep(0.2)


async def test_the_sign_in_form_refuses_wrong_and_non_admin_tokens(
    context: BrowserContext, sandbox: Sandbox, artifacts: Path
) -> None:
    page = await context.new_page()
    await sign_in(page, sandbox, "a-wrong-token-0123456789abcdef")
    await expect(page.locator("#login-error")).to_have_text("Wrong token.")
    await sign_in(page, sandbox, READER_TOKEN)
    await expect(page.locator("#login-error")).to_contain_text("has no admin scope")
    await shot(page, artifacts, "dashboard-login-refused")
    cookies = await context.cookies()
    assert not [c for c in cookies if c["name"] == "gw_admin"]
    await sign_in(page, sandbox, ADMIN_TOKEN)
    await expect(page).to_have_url(f"{sandbox.url}/admin")
    await expect(page.locator("#admin-name")).to_have_text("boss")
    (session,) = [c for c in await context.cookies() if c["name"] == "gw_admin"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/admin"
    assert await page.evaluate("document.cookie") == ""  # no script can read the session
    await page.click("#sign-out")
    await expect(page).to_have_url(f"{sandbox.url}/admin/login")
    await page.goto(f"{sandbox.url}/admin")
    await expect(page).to_have_url(f"{sandbox.url}/admin/login")


async def test_a_console_message_appears_on_the_dashboard_by_itself(
    context: BrowserContext, sandbox: Sandbox, artifacts: Path
) -> None:
    dashboard = await context.new_page()
    errors: list[str] = []
    dashboard.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(dashboard, sandbox, ADMIN_TOKEN)
    await dashboard.goto(f"{sandbox.url}/admin?refresh=1")  # a second instead of five
    await expect(dashboard.locator("#live")).to_have_attribute("data-refresh", "1")
    inbound = await number(dashboard, "#inbound-today")
    telegram = dashboard.locator('#inbound tr[data-channel="telegram"] td.today')
    telegram_before = int(await telegram.inner_text())
    answered = await first_responses(dashboard)
    await shot(dashboard, artifacts, "dashboard-before")

    console = await open_console(context, sandbox)
    name = f"Erik {uuid.uuid4().hex[:6]}"
    await console.fill("#customer-name", name)
    await console.click("#customer-form button[type=submit]")
    await console.fill("#customer-text", "Do you deliver on Sundays?")
    await console.press("#customer-text", "Enter")
    await open_topic(console, name)
    await expect(console.locator("#staff-log")).to_contain_text("Do you deliver on Sundays?")

    # No reload: the page fetches its live part again every few seconds.
    await expect(dashboard.locator("#inbound-today")).to_have_text(str(inbound + 1))
    await expect(telegram).to_have_text(str(telegram_before + 1))
    row = dashboard.locator("#queue tbody tr", has_text=name)
    await expect(row).to_have_count(1)
    link = await row.locator("a").get_attribute("href")
    assert link is not None and re.fullmatch(rf"https://t\.me/c/{STAFF_INTERNAL_CHAT}/\d+", link)
    await expect(row).to_contain_text("new")
    await shot(dashboard, artifacts, "dashboard-customer-waiting")

    await console.fill("#staff-text", "Yes, every day.")
    await console.press("#staff-text", "Enter")
    await expect(console.locator("#customer-log")).to_contain_text("Yes, every day.")
    await expect(dashboard.locator("#queue tbody tr", has_text=name)).to_have_count(0)
    await until(lambda: first_responses(dashboard), answered + 1)
    await expect(dashboard.locator("#frt-today")).not_to_have_text("—")
    bars = dashboard.locator("#frt-chart rect.series-0")
    assert (
        max(
            [
                float(h or 0)
                for h in await bars.evaluate_all("rs => rs.map(r => r.getAttribute('height'))")
            ]
        )
        > 0
    )
    assert await dashboard.locator("#live").get_attribute("data-state") == "ok"
    assert not errors, errors
    await shot(dashboard, artifacts, "dashboard-answered")
