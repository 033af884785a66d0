"""Who may open the dashboard: an HTTP API token with the ``admin`` scope (``api.tokens``).

The token is typed once into the login form; the browser then holds a session cookie,
not the token: ``<token name>.<expiry>.<nonce>.<HMAC>``, signed with a key derived from the
whole token set. Every replica derives the same key (no shared session store), and
changing any token — rotating a leaked one, removing a client, taking a scope away —
changes the key and so ends every session at once. The cookie is HttpOnly (no script
reads it) and SameSite=Strict (no other site's page can make the browser send it);
the logout form also carries a CSRF token bound to the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.config import ApiToken

COOKIE = "gw_admin"
SESSION_SECONDS = 12 * 3600
"""A session lasts a working day; then the token is asked for again."""
MAX_TOKEN_LENGTH = 512
"""Longer input is no token of ours: refused before any hashing."""


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True, slots=True)
class Login:
    """The outcome of a token typed into the login form."""

    name: str | None
    """The matching token's name (``None``: no token matches)."""
    admin: bool
    """Whether that token has the ``admin`` scope."""


class Sessions:
    def __init__(self, tokens: Sequence[ApiToken]) -> None:
        self._tokens = tuple((t.name, _digest(t.token.get_secret_value()), t) for t in tokens)
        self.admins = frozenset(t.name for t in tokens if "admin" in t.scopes)
        material = "\n".join(
            f"{t.name}\0{t.token.get_secret_value()}\0{','.join(sorted(t.scopes))}"
            for t in sorted(tokens, key=lambda t: t.name)
        )
        self._key = hmac.new(material.encode(), b"gateway admin session v1", "sha256").digest()

    def check(self, presented: str) -> Login:
        """Which token ``presented`` is, compared in constant time with every token
        (hashes of equal length, no early exit: timing tells nothing about any)."""
        if len(presented) > MAX_TOKEN_LENGTH:
            return Login(None, admin=False)
        digest = _digest(presented)
        found: ApiToken | None = None
        for _, known, token in self._tokens:
            if hmac.compare_digest(digest, known):
                found = token
        if found is None:
            return Login(None, admin=False)
        return Login(found.name, admin="admin" in found.scopes)

    def issue(self, name: str, now: datetime) -> str:
        """A session cookie's value for the admin token ``name``."""
        expires = int(now.timestamp()) + SESSION_SECONDS
        # The nonce makes every session its own (and so its logout form's token).
        signed = f"{name}.{expires}.{secrets.token_hex(8)}"
        return f"{signed}.{self._sign(signed)}"

    def verify(self, cookie: str | None, now: datetime) -> str | None:
        """The admin's token name if ``cookie`` is a valid, unexpired session of a token
        that still has the ``admin`` scope; ``None`` otherwise."""
        if not cookie or len(cookie) > 256:
            return None
        signed, _, signature = cookie.rpartition(".")
        name, _, rest = signed.partition(".")
        expires, _, _nonce = rest.partition(".")
        if not expires.isdigit() or not hmac.compare_digest(
            signature.encode(), self._sign(signed).encode()
        ):
            return None
        if int(expires) <= now.timestamp() or name not in self.admins:
            return None
        return name

    def csrf(self, cookie: str) -> str:
        """The logout form's token: only a page that could read the session's own
        response (ours) knows it."""
        return self._sign(f"csrf:{cookie}")

    def csrf_ok(self, cookie: str, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.csrf(cookie).encode())

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), "sha256").hexdigest()
