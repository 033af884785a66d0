"""Config validation: every error is reported with its YAML path; secrets stay secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.config import parse_config, yaml_path
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "staff": {"token": "123:abc", "chat_id": -100123},
    "channels": [{"id": "tg_shop", "kind": "telegram", "token": "456:def"}],
}


def errors_of(data: object, **kwargs: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(data), **kwargs)  # type: ignore[arg-type]
    return dict(info.value.errors)


def test_minimal_config_is_valid() -> None:
    settings = parse_config(yaml.safe_dump(GOOD))
    assert settings.channels[0].id == "tg_shop"
    assert settings.redis.url is None
    assert settings.server.port == 8080


def test_errors_carry_yaml_paths() -> None:
    bad = {
        "timezone": "Mars/Olympus",
        "server": {"listen": "nowhere"},
        "staff": {"token": "not-a-token", "chat_id": 5},
        "channels": [
            {"id": "tg_shop", "kind": "telegram", "token": "1:a", "mode": "webhook"},
            {"id": "Bad Id", "kind": "telegram", "token": "2:b"},
            {"id": "x", "kind": "carrier-pigeon"},
        ],
    }
    errors = errors_of(bad)
    assert "unknown time zone" in errors["timezone"]
    assert "HOST:PORT" in errors["server.listen"]
    assert "123456:ABC" in errors["staff.token"]
    assert "negative" in errors["staff.chat_id"]
    assert "channels[1].id" in errors
    assert "webhook_secret" in errors["channels[0]"]
    assert "channels[2]" in " ".join(errors)


def test_placeholders_are_rejected() -> None:
    data = {**GOOD, "staff": {"token": "CHANGE_ME", "chat_id": -1}}
    assert "placeholder" in errors_of(data)["staff.token"]


def test_a_sentence_starting_with_your_is_no_placeholder() -> None:
    data = {**GOOD, "templates": [{"name": "w", "text": "Your warranty is 2 years."}]}
    assert parse_config(yaml.safe_dump(data)).templates[0].text.startswith("Your")
    data = {**GOOD, "staff": {"token": "your_token_here", "chat_id": -1}}
    assert "placeholder" in errors_of(data)["staff.token"]


def test_env_interpolation_and_missing_variables() -> None:
    data = {**GOOD, "staff": {"token": "${STAFF}", "chat_id": "${CHAT:--100777}"}}
    settings = parse_config(yaml.safe_dump(data), environ={"STAFF": "99:zz"})
    assert settings.staff.token.get_secret_value() == "99:zz"
    assert settings.staff.chat_id == -100777
    assert "STAFF is not set" in errors_of(data, environ={})["staff.token"]


def test_secrets_never_printed() -> None:
    settings = parse_config(yaml.safe_dump(GOOD))
    assert "123:abc" not in repr(settings)
    assert "123:abc" in settings.secrets()


def test_duplicate_and_reserved_ids() -> None:
    twice = {**GOOD, "channels": GOOD["channels"] * 2}
    assert "defined twice" in errors_of(twice)["channels[1]"]
    reserved = {**GOOD, "channels": [{"id": "staff", "kind": "telegram", "token": "4:x"}]}
    assert "reserved" in errors_of(reserved)["channels[0].id"]


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("staff: [unclosed")
    assert info.value.errors[0][0].startswith("line ")


def test_yaml_path_format() -> None:
    assert yaml_path(("channels", 2, "telegram", "token")) == "channels[2].token"
    assert yaml_path(()) == "(root)"


def test_shipped_example_config_is_valid() -> None:
    from gateway.config import WhatsAppChannel

    env = {
        "STAFF_BOT_TOKEN": "1:real",
        "SHOP_BOT_TOKEN": "2:real",
        "VK_TOKEN": "vk1.a.real",
        "VK_SECRET": "s3cr3t",
        "VIBER_TOKEN": "4a5b-viber",
        "WA_TOKEN": "EAAG-real",
        "WA_APP_SECRET": "0123abcd",
        "WA_VERIFY_TOKEN": "my-verify-string",
    }
    settings = parse_config((ROOT / "bridge_config.yaml").read_text(), environ=env)
    assert [(c.id, c.kind) for c in settings.channels] == [
        ("tg_shop", "telegram"),
        ("vk_shop", "vk"),
        ("viber_shop", "viber"),
        ("wa_shop", "whatsapp"),
        ("site", "webchat"),
    ]
    [whatsapp] = [c for c in settings.channels if isinstance(c, WhatsAppChannel)]
    assert whatsapp.phone_number_id == "106540352242922"
    assert whatsapp.app_secret.get_secret_value() == "0123abcd"
    [template] = whatsapp.templates
    assert (template.name, template.parameters) == ("order_ready", 2)
    assert template.text is not None and "{{1}}" in template.text and "{{2}}" in template.text


def test_check_config_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"staff": {"token": "x", "chat_id": 1}}))
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "staff.token" in result.stderr and "channels" in result.stderr
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", "-c", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
