"""HTTP sessions for vk_api: a base-URL override and timeouts it does not set itself.

vk_api 11.10 posts every method to the hard-coded ``https://api.vk.ru/method/…`` with no
timeout. A ``requests`` transport adapter mounted on that prefix sends the same request
to the configured ``api_server`` instead (an emulator, a proxy) and gives it a timeout;
everything else about the request (form-encoded body, headers) stays vk_api's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

VK_METHODS = "https://api.vk.ru/"


class _Timed(HTTPAdapter):
    """Adds a timeout to requests that were made without one."""

    def __init__(self, timeout: float) -> None:
        super().__init__(pool_maxsize=32)
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, *args, **kwargs)


class _Redirect(_Timed):
    """Sends ``https://api.vk.ru/…`` to ``base/…``."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(timeout)
        self.base = base.rstrip("/") + "/"

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        url = request.url or ""
        if url.startswith(VK_METHODS):
            request.url = self.base + url[len(VK_METHODS) :]
        return super().send(request, *args, **kwargs)


def api_session(
    base: str, timeout: float, headers: Mapping[str, str] | None = None
) -> requests.Session:
    """A session whose VK API calls go to ``base`` and every call has a timeout."""
    session = requests.Session()
    session.headers.update(headers or {})
    timed = _Timed(timeout)
    session.mount("http://", timed)
    session.mount("https://", timed)
    session.mount(VK_METHODS, _Redirect(base, timeout))
    return session
