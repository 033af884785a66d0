"""The sandbox console in a real browser: a customer writes in each messenger's tab, the
message appears in the staff group's topic, and an operator's answer reaches the
customer's chat (through the real gateway, its Redis and the emulators)."""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.async_api import BrowserContext, Page, expect

from tests.browser.conftest import Sandbox, shot


async def open_console(context: BrowserContext, sandbox: Sandbox) -> Page:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{sandbox.url}/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert not errors, errors
    return page


async def open_topic(page: Page, name: str) -> None:
    """Click the customer's topic in the staff pane (it appears once the gateway made it)."""
    topic = page.locator("#topic-list button.topic", has_text=name)
    await expect(topic).to_have_count(1)
    await topic.click()
    await expect(page.locator("#topic-title")).to_contain_text(name)


async def test_a_customer_message_reaches_the_topic_and_the_answer_comes_back(
    context: BrowserContext, sandbox: Sandbox, artifacts: Path
) -> None:
    page = await open_console(context, sandbox)
    name = f"Dana {uuid.uuid4().hex[:6]}"
    await page.fill("#customer-name", name)
    await page.click("#customer-form button[type=submit]")
    await expect(page.locator("#customer-select")).to_contain_text(name)
    question = f"Where is my order {name}?"
    await page.fill("#customer-text", question)
    await page.press("#customer-text", "Enter")
    await expect(page.locator("#customer-log")).to_contain_text(question)

    await open_topic(page, name)
    await expect(page.locator("#staff-log")).to_contain_text(question)
    await page.fill("#staff-text", "It ships today.")
    await page.press("#staff-text", "Enter")
    await expect(page.locator("#customer-log")).to_contain_text("It ships today.")
    await shot(page, artifacts, "console-telegram-answered")


async def test_every_messenger_tab_writes_into_the_staff_group(
    context: BrowserContext, sandbox: Sandbox, artifacts: Path
) -> None:
    page = await open_console(context, sandbox)
    await expect(page.locator("#customer-tabs")).to_be_visible()
    customers = {"vk": "Ivan Petrov", "viber": "Olena Kovalenko", "whatsapp": "Maria Sokolova"}
    for tab, customer in customers.items():
        await page.click(f"#tab-{tab}")
        await expect(page.locator(f"#{tab}-customer")).to_be_visible()
        text = f"hello from {tab} {uuid.uuid4().hex[:6]}"
        await page.fill(f"#{tab}-text", text)
        await page.press(f"#{tab}-text", "Enter")
        await expect(page.locator(f"#{tab}-log")).to_contain_text(text)
        await open_topic(page, customer)
        await expect(page.locator("#staff-log")).to_contain_text(text)
        await shot(page, artifacts, f"console-{tab}-in-staff")
