"""VK communities, Viber bots and WhatsApp numbers in the config."""

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


def viber(**fields: object) -> str:
    channel = {"id": "viber_shop", "kind": "viber", "token": "4a5b-viber-token", "name": "Shop"}
    return yaml.safe_dump({"staff": STAFF, "channels": [channel | fields]})


def test_viber_bots_take_webhooks_only_and_a_short_sender_name() -> None:
    settings = parse_config(viber(welcome="Здравствуйте! Чем помочь?"))
    [bot] = settings.channels
    assert bot.kind == "viber" and bot.mode == "webhook" and bot.min_api_version == 7
    assert "4a5b-viber-token" in settings.secrets()
    with pytest.raises(ConfigError) as long_name:
        parse_config(viber(name="A shop with a very long name indeed"))
    assert "channels[0].name" in dict(long_name.value.errors)
    with pytest.raises(ConfigError) as polling:
        parse_config(viber(mode="polling"))
    assert "channels[0].mode" in dict(polling.value.errors)


def test_whatsapp_numbers_and_their_templates() -> None:
    channel = {
        "id": "wa_shop",
        "kind": "whatsapp",
        "token": "EAAG-token",
        "phone_number_id": "106540352242922",
        "app_secret": "app-secret",
        "verify_token": "verify-me",
        "templates": [{"name": "order_ready", "parameters": 2}],
    }
    settings = parse_config(yaml.safe_dump({"staff": STAFF, "channels": [channel]}))
    [wa] = settings.channels
    assert wa.kind == "whatsapp" and wa.api_version == "v21.0"
    assert wa.templates[0].language == "en_US"
    assert {"EAAG-token", "app-secret", "verify-me"} <= set(settings.secrets())
    bad = channel | {"phone_number_id": "+1 555", "templates": [{"name": "Order Ready"}]}
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump({"staff": STAFF, "channels": [bad]}))
    assert {"channels[0].phone_number_id", "channels[0].templates[0].name"} <= set(
        dict(info.value.errors)
    )
