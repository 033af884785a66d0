"""VK community accounts in the config."""

from __future__ import annotations

import pytest
import yaml

from gateway.config import VkChannel, parse_config
from gateway.errors import ConfigError

STAFF = {"token": "123:abc", "chat_id": -100123}


def config(**vk: object) -> str:
    channel = {"id": "vk_shop", "kind": "vk", "token": "vk1.a.token", "group_id": 229000001}
    return yaml.safe_dump({"staff": STAFF, "channels": [channel | vk]})


def errors(**vk: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config(**vk))
    return dict(info.value.errors)


def test_defaults_poll_the_real_api_at_a_modern_version() -> None:
    settings = parse_config(config())
    [vk] = settings.channels
    assert isinstance(vk, VkChannel)
    assert vk.mode == "polling" and vk.api_version == "5.199"
    assert str(vk.api_server).rstrip("/") == "https://api.vk.ru"
    assert settings.channel("vk_shop") is vk


def test_webhook_mode_needs_the_secret_and_old_versions_are_refused() -> None:
    assert "needs secret" in " ".join(errors(mode="webhook").values())
    assert "5.103" in " ".join(errors(api_version="5.92").values())
    assert "channels[0].group_id" in errors(group_id=0)


def test_secrets_are_redacted_from_logs() -> None:
    settings = parse_config(config(mode="webhook", secret="s3cr3t-key"))
    assert {"vk1.a.token", "s3cr3t-key"} <= set(settings.secrets())
