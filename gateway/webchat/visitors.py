"""Who a website visitor is: a signed token kept by the widget, and what they told us.

- **Token** ``<visitor>.<signature>``: an HMAC-SHA256 of the account and visitor id
  under the account's secret (``channels[].secret``, else derived from the staff token
  like media links). The widget keeps it in the page's ``localStorage`` and sends it in
  an ``Authorization`` header (or the WebSocket's first frame): no cookie, so a foreign
  page cannot act for a visitor (no CSRF), and a token cannot be forged.
- **Signed identity**: a site with logged-in users passes their user id and
  ``HMAC-SHA256(identity_secret, user_id)`` (hex, computed by the site's server); the
  visitor id is then derived from the user id, so the same person is recognised on any
  device, and nobody can claim another's id without the secret.
- **Profile**: name, phone and e-mail from the pre-chat (or offline) form, validated,
  kept with the visitor; each message carries them, so a phone joins the visitor to the
  contact that has it (the WhatsApp one, say).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from gateway.config import Settings, WebchatChannel
from gateway.identity import InvalidIdentity, normalise_phone
from gateway.store import keys
from gateway.store.redis import Redis, text
from gateway.webchat.log import KEEP_SECONDS

VISITOR = re.compile(r"^[uv][A-Za-z0-9_-]{8,40}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,24}$")
NAME_LIMIT = 64


class Refused(Exception):
    """The request cannot be accepted; the message says why (for the visitor)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Visitor:
    id: str
    token: str


class Visitors:
    def __init__(self, redis: Redis, settings: Settings, channel: WebchatChannel) -> None:
        self.redis = redis
        self.channel = channel
        self.region = settings.contacts.default_region
        configured = channel.secret
        seed = (
            configured.get_secret_value()
            if configured is not None
            else f"webchat:{channel.id}:" + settings.staff.token.get_secret_value()
        )
        self._key = hashlib.sha256(seed.encode()).digest()

    def _sign(self, visitor: str) -> str:
        message = f"{self.channel.id}:{visitor}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def issue(self, visitor: str) -> Visitor:
        return Visitor(visitor, f"{visitor}.{self._sign(visitor)}")

    def check(self, token: str | None) -> Visitor:
        """The visitor a token names; :class:`Refused` (401) if it is not one we made."""
        visitor, _, signature = (token or "").partition(".")
        if not VISITOR.match(visitor) or not hmac.compare_digest(
            signature.encode(), self._sign(visitor).encode()
        ):
            raise Refused("unknown or forged visitor token", 401)
        return Visitor(visitor, token or "")

    def session(self, token: str | None, user_id: str | None, user_hash: str | None) -> Visitor:
        """The visitor for a (re)opened widget: a signed site user, the token's, or new."""
        if user_id:
            secret = self.channel.identity_secret
            if secret is None:
                raise Refused("this chat does not take signed identities", 400)
            expected = hmac.new(
                secret.get_secret_value().encode(), user_id.encode(), hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest((user_hash or "").lower().encode(), expected.encode()):
                raise Refused("the identity's signature does not match", 401)
            derived = hashlib.sha256(f"{self.channel.id}:{user_id}".encode()).hexdigest()
            return self.issue(f"u{derived[:24]}")
        if token:
            try:
                return self.check(token)
            except Refused:
                pass  # a token of another secret (rotated): a new visitor
        return self.issue("v" + secrets.token_urlsafe(12).replace("-", "_"))

    # Profile -----------------------------------------------------------------------------

    def validated(self, form: dict[str, Any]) -> dict[str, str]:
        """The form's fields this chat asks for, checked; :class:`Refused` names the
        first bad or missing one."""
        wanted = self.channel.form
        found: dict[str, str] = {}
        for field in wanted.fields:
            raw = str(form.get(field) or "").strip()
            if not raw:
                if field in wanted.required:
                    raise Refused(f"{field} is required")
                continue
            found[field] = self._field(field, raw)
        return found

    def _field(self, field: str, raw: str) -> str:
        if field == "name":
            if len(raw) > NAME_LIMIT:
                raise Refused(f"name is longer than {NAME_LIMIT} characters")
            return raw
        if field == "phone":
            try:
                return normalise_phone(raw, self.region)
            except InvalidIdentity as exc:
                raise Refused(f"phone: {exc}") from exc
        if not EMAIL.match(raw):
            raise Refused("email is not an e-mail address")
        return raw.lower()

    async def remember(self, visitor: str, profile: dict[str, str]) -> None:
        if profile:
            key = keys.webchat_profile(self.channel.id, visitor)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=dict[Any, Any](profile))
                pipe.expire(key, KEEP_SECONDS)
                await pipe.execute()

    async def profile(self, visitor: str) -> dict[str, str]:
        found = await self.redis.hgetall(keys.webchat_profile(self.channel.id, visitor))
        return {text(k): text(v) for k, v in found.items()}
