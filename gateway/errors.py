"""The gateway's typed error tree.

Adapters convert every SDK or HTTP failure into one of these at the edge (one
``check_response``-style function per adapter, always ``raise ... from exc``), so the
core decides what to do by type, never by parsing strings:

- :class:`TransientError` — try again later (429, 5xx, timeouts, connection resets);
  ``retry_after`` is the platform's own wait when it gave one.
- :class:`PermanentError` — retrying cannot help (blocked by the user, chat not found);
  reported to staff, never silently dropped.
- :class:`TopicLost` / :class:`TopicClosed` — staff-side forum trouble the delivery
  layer repairs by itself (recreate or reopen the topic, then resend).
- :class:`BadPayload` — inbound data that is not what the platform documents.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration file is invalid; ``errors`` lists ``(yaml_path, message)``."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {path}: {message}" for path, message in errors)
        super().__init__(f"invalid configuration:\n{lines}")


class AdapterError(GatewayError):
    """A messenger platform refused or failed an operation."""

    def __init__(self, channel: str, message: str) -> None:
        self.channel = channel
        super().__init__(f"{channel}: {message}")


class TransientError(AdapterError):
    """Worth retrying; wait at least ``retry_after`` seconds when it is set."""

    def __init__(self, channel: str, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(channel, message)


class PermanentError(AdapterError):
    """Retrying will not help; ``reason`` is a short human explanation for staff."""

    def __init__(self, channel: str, message: str, reason: str | None = None) -> None:
        self.reason = reason or message
        super().__init__(channel, message)


class TopicLost(PermanentError):
    """The staff forum topic no longer exists (deleted, or archived in a huge forum)."""


class TopicClosed(PermanentError):
    """The staff forum topic was closed by someone; it can be reopened."""


class BadPayload(AdapterError):
    """Inbound data does not match the platform's documented format."""


class Unauthorized(GatewayError):
    """A webhook request failed the platform's authentication check."""
