"""``lines:``: several staff groups, checked like every other section (YAML paths)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway.config import MAIN, parse_config
from gateway.errors import ConfigError

BASE: dict[str, Any] = {
    "staff": {"token": "123:abc", "operators": [{"id": 1, "name": "Anna", "roles": ["sales"]}]},
    "channels": [
        {"id": "tg_sales", "kind": "telegram", "token": "456:def"},
        {"id": "tg_help", "kind": "telegram", "token": "789:ghi"},
        {"id": "tg_misc", "kind": "telegram", "token": "790:jkl"},
    ],
    "lines": [
        {"name": "sales", "chat_id": -1001, "accounts": ["tg_sales"]},
        {
            "name": "service",
            "title": "Service",
            "chat_id": -1002,
            "accounts": ["tg_help"],
            "operators": [1],
            "sla": {"first_response_minutes": 5},
            "working_hours": {"week": {"mon": ["09:00-18:00"]}},
        },
    ],
}


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(data))
    return dict(info.value.errors)


def test_lines_route_accounts_and_the_first_is_the_default() -> None:
    settings = parse_config(yaml.safe_dump(BASE))
    assert settings.staff.chat_id == -1001  # left out: the first line's group
    assert settings.line_of("tg_help").name == "service"
    assert settings.line_of("tg_misc").name == "sales"  # named by no line
    assert settings.line_at(-1002) is not None and settings.line_at("-1002").label == "Service"
    assert settings.line_at(-1009) is None
    assert settings.line(None).name == "sales" and settings.line("gone").name == "sales"


def test_without_lines_the_staff_group_is_the_one_line() -> None:
    data = {**BASE, "staff": {**BASE["staff"], "chat_id": -1005}}
    del data["lines"]
    settings = parse_config(yaml.safe_dump(data))
    assert [(x.name, x.chat_id) for x in settings.all_lines] == [(MAIN, -1005)]
    assert settings.line_of("tg_help").name == MAIN


def test_line_errors_carry_their_paths() -> None:
    bad = {
        **BASE,
        "lines": [
            {"name": "sales", "chat_id": -1001, "accounts": ["tg_sales", "nope"]},
            {"name": "sales", "chat_id": -1001, "accounts": ["tg_sales"], "operators": [7]},
        ],
    }
    errors = errors_of(bad)
    assert "no channel 'nope'" in errors["lines[0].accounts[1]"]
    assert "served by lines[0]" in errors["lines[1].accounts[0]"]
    assert "defined twice" in errors["lines[1]"]
    assert "7 is not in staff.operators" in errors["lines[1].operators[0]"]
    shapes = {
        **BASE,
        "lines": [
            {
                "name": "Bad Name",
                "chat_id": 5,
                "templates": [{"name": "hi", "text": "Hello {contact.age}"}],
            }
        ],
    }
    errors = errors_of(shapes)
    assert "lines[0].name" in errors and "negative" in errors["lines[0].chat_id"]
    assert "unknown macro" in errors["lines[0].templates[0].text"]


def test_references_inside_a_line_are_checked() -> None:
    bad = {
        **BASE,
        "staff": {**BASE["staff"], "chat_id": -1009},
        "templates": [{"name": "hi", "text": "Hello!"}],
        "lines": [
            {
                "name": "sales",
                "chat_id": -1001,
                "responsible": {"role": "ghosts"},
                "templates": [{"name": "hi", "text": "Hi"}, {"name": "x", "text": "y"}],
            },
        ],
    }
    errors = errors_of(bad)
    assert "one of lines[].chat_id" in errors["staff.chat_id"]
    assert "no role 'ghosts'" in errors["lines[0].responsible.role"]
    assert "global already" in errors["lines[0].templates[0]"]
