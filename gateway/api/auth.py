"""Bearer tokens (``api.tokens``): who is calling, checked in constant time.

The presented token is hashed (SHA-256) and compared with the hash of *every*
configured token by :func:`hmac.compare_digest`, without stopping at a match. Comparing
digests of one length means neither the position of the first differing byte nor the
length of the secret shows in the answer's timing, and walking the whole list means the
time does not tell which token (the first or the last) matched — unlike a dict lookup
keyed by the secret, whose hashing and probing depend on it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from gateway.api.errors import ApiError
from gateway.config import ApiToken
from gateway.config.integrations import Scope

CHALLENGE = 'Bearer realm="gateway"'


def _digest(secret: str) -> bytes:
    # surrogateescape: a header aiohttp could not decode still hashes (and fails).
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


class Tokens:
    def __init__(self, tokens: Callable[[], Sequence[ApiToken]]) -> None:
        """``tokens`` gives the configured tokens now (a reloaded config's take effect
        at the next request); their digests are computed once per list."""
        self._tokens = tokens
        self._of: Sequence[ApiToken] | None = None
        self._known: list[tuple[bytes, ApiToken]] = []

    def _digests(self) -> list[tuple[bytes, ApiToken]]:
        tokens = self._tokens()
        if tokens is not self._of:
            self._known = [(_digest(t.token.get_secret_value()), t) for t in tokens]
            self._of = tokens
        return self._known

    def client(self, authorization: str | None) -> ApiToken:
        """The client the ``Authorization`` header names (401 if none does)."""
        if not authorization:
            raise _unauthorized("Send the token as `Authorization: Bearer <token>`.")
        scheme, _, given = authorization.strip().partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise _unauthorized("Send the token as `Authorization: Bearer <token>`.")
        presented = _digest(given)
        found: ApiToken | None = None
        for digest, token in self._digests():  # every one, even after a match
            if hmac.compare_digest(presented, digest):
                found = token
        if found is None:
            raise _unauthorized("Unknown token.", error="invalid_token")
        return found


def require(client: ApiToken, scope: Scope) -> None:
    """403 unless the client's token has ``scope`` (scopes imply nothing: see
    :class:`gateway.config.ApiToken`)."""
    if scope not in client.scopes:
        raise ApiError(
            403,
            f"The token {client.name!r} lacks the {scope!r} scope (it has: "
            f"{', '.join(client.scopes)}).",
            headers={
                "WWW-Authenticate": f'{CHALLENGE}, error="insufficient_scope", scope="{scope}"'
            },
        )


def _unauthorized(message: str, error: str | None = None) -> ApiError:
    challenge = f'{CHALLENGE}, error="{error}"' if error else CHALLENGE
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})
