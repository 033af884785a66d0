"""Downloading a customer's file from a messenger's CDN, for the adapters built on
``requests`` (VK, Viber): streamed, with a size cap, failures in the gateway's terms."""

from __future__ import annotations

import requests

from gateway.errors import PermanentError, TransientError

CHUNK = 64 * 1024


def fetch_capped(
    session: requests.Session, url: str, limit: int, *, channel: str, timeout: float | None = None
) -> bytes:
    """GET ``url`` and return its bytes, refusing more than ``limit`` (a permanent
    error: it will not fit anywhere); 5xx is transient, other statuses permanent."""
    with session.get(url, stream=True, timeout=timeout) as response:
        if response.status_code >= 500:
            raise TransientError(channel, f"file: HTTP {response.status_code}")
        if response.status_code != 200:
            raise PermanentError(channel, f"HTTP {response.status_code}", reason="the file is gone")
        buffer = bytearray()
        for chunk in response.iter_content(CHUNK):
            buffer += chunk
            if len(buffer) > limit:
                raise PermanentError(
                    channel,
                    "file too large",
                    reason=f"the file is larger than the {limit // 2**20} MB forwarded",
                )
    return bytes(buffer)
