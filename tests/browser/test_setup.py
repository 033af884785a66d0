"""The browser tests' own setup: a missing Chromium fails them, saying how to install it
(they are never skipped silently)."""

from __future__ import annotations

import os

import pytest

from tests.browser.conftest import chromium_path


def test_a_missing_chromium_fails_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        chromium_path()
    monkeypatch.delenv("GATEWAY_CHROMIUM")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match=r"chromium not on PATH"):
        chromium_path()


def test_the_chromium_found_can_run() -> None:
    assert os.access(chromium_path(), os.X_OK)
