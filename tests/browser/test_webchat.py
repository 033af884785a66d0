"""The website chat widget in a real browser (issue 11): a visitor opens the demo page,
fills the form, writes; the message appears in the staff topic (the sandbox console's
staff pane); the operator's reply shows in the widget; after a reload the history is
still there; markup from either side renders as text and runs nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.async_api import BrowserContext, Page, expect

from tests.browser.conftest import Sandbox, shot
from tests.browser.test_console import open_console, open_topic

XSS_IN = '<img src=x onerror="window.__xss=1"><b>bold?</b>'
XSS_OUT = "<script>window.__xss=2</script><i>reply</i>"


async def open_site(context: BrowserContext, sandbox: Sandbox) -> tuple[Page, list[str]]:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    await page.goto(f"{sandbox.url}/webchat/demo/site")
    return page, errors


async def test_a_visitor_chats_through_the_widget_and_keeps_the_history(
    context: BrowserContext, sandbox: Sandbox, artifacts: Path
) -> None:
    site, errors = await open_site(context, sandbox)
    name = f"Vera {uuid.uuid4().hex[:6]}"
    await site.click(".gw-button")
    await expect(site.locator(".gw-form")).to_be_visible()  # the name is asked first
    await site.fill(".gw-form input[name=name]", name)
    await site.click(".gw-start")
    await site.fill(".gw-input", "Do you deliver on Sundays?")
    await site.press(".gw-input", "Enter")
    mine = site.locator(".gw-mine", has_text="Do you deliver on Sundays?")
    await expect(mine.locator(".gw-status")).to_have_text("✓")  # acknowledged
    await site.fill(".gw-input", XSS_IN)
    await site.press(".gw-input", "Enter")
    await expect(site.locator(".gw-mine .gw-text").last).to_have_text(XSS_IN)

    console = await open_console(context, sandbox)
    await open_topic(console, name)
    await expect(console.locator("#staff-log")).to_contain_text("Do you deliver on Sundays?")
    await expect(console.locator("#staff-log")).to_contain_text(XSS_IN)
    theirs = site.locator(".gw-theirs .gw-text")
    await console.fill("#staff-text", "Yes, from 10 to 18.")
    await console.press("#staff-text", "Enter")
    await expect(theirs.filter(has_text="Yes, from 10 to 18.")).to_have_count(1)
    await console.fill("#staff-text", XSS_OUT)
    await console.press("#staff-text", "Enter")
    await expect(theirs.last).to_have_text(XSS_OUT)
    await expect(site.locator(".gw-theirs .gw-author").first).not_to_be_empty()
    await expect(mine.locator(".gw-status")).to_have_text("✓✓")  # read by the operator
    await shot(site, artifacts, "webchat-answered")

    await site.reload()
    await expect(site.locator(".gw-panel")).to_be_visible()  # it stays open
    await expect(site.locator(".gw-mine .gw-text")).to_have_text(
        ["Do you deliver on Sundays?", XSS_IN]
    )
    await expect(theirs).to_have_text(["Yes, from 10 to 18.", XSS_OUT])
    # Closed, the chat counts new replies on its button.
    await site.click(".gw-close")
    await console.fill("#staff-text", "Anything else?")
    await console.press("#staff-text", "Enter")
    await expect(site.locator(".gw-badge")).to_have_text("1")
    await site.click(".gw-button")
    await expect(site.locator(".gw-badge")).to_be_hidden()
    await expect(theirs.last).to_have_text("Anything else?")
    assert await site.evaluate("window.__xss") is None  # nothing ran, either way
    assert await console.evaluate("window.__xss") is None
    assert not errors, errors
    await shot(site, artifacts, "webchat-after-reload")


async def test_the_console_shows_the_website_tab(
    context: BrowserContext, sandbox: Sandbox, artifacts: Path
) -> None:
    console = await open_console(context, sandbox)
    await console.click("#tab-website")
    frame = console.frame_locator("#website-frame")
    await expect(frame.locator(".gw-button")).to_be_visible()
    await shot(console, artifacts, "console-website-tab")
