"""Who may call the API: bearer tokens from ``api.tokens``, scopes, constant-time checks,
and the error shape of every refusal."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.api import auth
from gateway.api.auth import Tokens
from gateway.api.errors import ApiError
from gateway.config import ApiToken
from tests.api.conftest import ADMIN_TOKEN, CRM_TOKEN, TOKENS, VIEWER_TOKEN, StartApi


def _error(body: dict[str, Any], code: str) -> str:
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


async def test_no_token_wrong_token_and_wrong_scope(start_api: StartApi) -> None:
    api = await start_api()
    async with api.http.get(f"{api.base}/operators") as response:  # no header at all
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
        _error(await response.json(), "unauthorized")
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", CRM_TOKEN, "Token " + CRM_TOKEN):
        async with api.http.get(
            f"{api.base}/operators", headers={"Authorization": header}
        ) as response:
            assert response.status == 401, header
            _error(await response.json(), "unauthorized")
    near_misses = [
        CRM_TOKEN[:-1],  # a prefix
        CRM_TOKEN + "x",  # one character more
        CRM_TOKEN.upper(),
        CRM_TOKEN[:-1] + "0",  # the last character differs
        "x" * 2000,
    ]
    with capture_logs() as logs:
        for token in near_misses:
            status, body = await api.call("GET", "/operators", token=token)
            assert status == 401, token
            assert "Unknown token" in _error(body, "unauthorized")
        await api.get("/operators")
    # Each request is logged (who, what, the status), never with a token.
    assert [e["status"] for e in logs if e["event"] == "api.request"] == [401] * 5 + [200]
    assert [e.get("client") for e in logs if e["event"] == "api.request"][-1] == "crm"
    assert not [e for e in logs if any(t[:20] in str(e) for t in [CRM_TOKEN, *near_misses])]
    async with api.http.get(
        f"{api.base}/operators", headers={"Authorization": f"Bearer {near_misses[0]}"}
    ) as response:
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    # The scheme is case-insensitive (RFC 7235) and padding is tolerated.
    async with api.http.get(
        f"{api.base}/operators", headers={"Authorization": f"bearer   {CRM_TOKEN}  "}
    ) as response:
        assert response.status == 200

    # The document needs no token.
    async with api.http.get(f"{api.base}/openapi.json") as response:
        assert response.status == 200
        assert (await response.json())["openapi"] == "3.1.0"

    # read-only: reading works, acting is refused before anything is looked at.
    assert (await api.get("/operators", token=VIEWER_TOKEN))["items"]
    status, body = await api.call(
        "POST", "/contacts/1/task/close", token=VIEWER_TOKEN, json={"reason": "x"}
    )
    assert status == 403
    assert "'write'" in _error(body, "forbidden")
    # admin implies nothing else: no read.
    status, body = await api.call("GET", "/operators", token=ADMIN_TOKEN)
    assert status == 403
    assert "'read'" in _error(body, "forbidden")
    # Auth comes before validation: no token learns nothing about the input rules.
    status, body = await api.call("POST", "/contacts/abc/merge", token=None, json=[])
    assert status == 401
    status, body = await api.call("POST", "/contacts/abc/merge", token=VIEWER_TOKEN, json=[])
    assert status == 403


def test_no_tokens_let_nobody_in_and_a_reloaded_list_applies() -> None:
    """Without ``api.tokens`` the API is still mounted, and answers 401 to everything;
    the tokens are read per request, so a reloaded config's list applies at once."""
    configured: list[tuple[ApiToken, ...]] = [()]
    tokens = Tokens(lambda: configured[0])
    with pytest.raises(ApiError) as refused:
        tokens.client(f"Bearer {CRM_TOKEN}")
    assert refused.value.status == 401
    configured[0] = (ApiToken.model_validate(TOKENS[0]),)
    assert tokens.client(f"Bearer {CRM_TOKEN}").name == "crm"
    configured[0] = (ApiToken.model_validate(TOKENS[1]),)
    with pytest.raises(ApiError):
        tokens.client(f"Bearer {CRM_TOKEN}")


@pytest.mark.parametrize("which", [0, 1, 2, None])
def test_every_token_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, which: int | None
) -> None:
    """Whichever token is presented (the first, the last, or an unknown one), it is
    compared with every configured token, as digests of one length: the timing does not
    depend on which one matched, where the first difference is, or the secret's length."""
    configured = tuple(ApiToken.model_validate(t) for t in TOKENS)
    tokens = Tokens(lambda: configured)
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:  # the real comparison, counted
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    presented = str(TOKENS[which]["token"]) if which is not None else "not-a-token-" * 3
    if which is None:
        with pytest.raises(ApiError) as refused:
            tokens.client(f"Bearer {presented}")
        assert refused.value.status == 401
    else:
        assert tokens.client(f"Bearer {presented}").name == TOKENS[which]["name"]
    assert compared == [(32, 32)] * len(TOKENS)
