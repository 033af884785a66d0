"""Files the gateway serves itself, for messengers that fetch outbound media by URL.

Viber has no upload endpoint: a picture, video or file is sent as a public URL that
Viber downloads (https://developers.viber.com/docs/api/rest-bot-api/#send-message).
The bytes wait in Redis (so any replica can serve them) under a random id, and the URL
carries its expiry and an HMAC of (id, name, expiry): only URLs the gateway made open,
and only until they expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from urllib.parse import quote

from gateway.config import Settings
from gateway.errors import PermanentError
from gateway.store import keys
from gateway.store.redis import Redis

TTL_SECONDS = 24 * 3600
"""Long enough for a messenger's retries; media are not an archive."""


class MediaStore:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        ttl: int = TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.clock = clock
        configured = settings.server.media_secret
        # Without a configured secret, one derived from the staff token: stable across
        # replicas and restarts, and as secret as the token itself.
        seed = (
            configured.get_secret_value()
            if configured is not None
            else "media:" + settings.staff.token.get_secret_value()
        )
        self._key = hashlib.sha256(seed.encode()).digest()
        public = settings.server.public_url
        self.public_url: str | None = str(public).rstrip("/") if public else None

    def _sign(self, media_id: str, name: str, expires: int) -> str:
        message = f"{media_id}/{name}/{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    async def publish(self, data: bytes, name: str) -> str:
        """Store ``data`` and return the URL that serves it until it expires."""
        if self.public_url is None:
            raise PermanentError(
                "gateway",
                "no public_url",
                reason="this messenger fetches files by URL: set server.public_url",
            )
        media_id = secrets.token_urlsafe(16)
        expires = int(self.clock()) + self.ttl
        await self.redis.set(keys.media(media_id), data, ex=self.ttl)
        signature = self._sign(media_id, name, expires)
        return f"{self.public_url}/media/{media_id}/{quote(name)}?e={expires}&s={signature}"

    def valid(self, media_id: str, name: str, expires: str, signature: str) -> bool:
        """Whether a request's URL is one :meth:`publish` made and it has not expired."""
        if not expires.isdigit() or int(expires) < self.clock():
            return False
        expected = self._sign(media_id, name, int(expires))
        return hmac.compare_digest(expected.encode(), signature.encode())

    async def read(self, media_id: str) -> bytes | None:
        data = await self.redis.get(keys.media(media_id))
        return data.encode() if isinstance(data, str) else data
