"""``gateway simulate`` (issue 10): a config and a file of messages in, what would happen
out — the real command against a throw-away embedded Redis, compared with a golden file
(contacts, processes, routing, greetings, the away message and working-time deadlines,
reminders as the virtual clock passes them, a spam rule)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent / "data" / "simulate"


def simulate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
        cwd=HERE,
    )


def test_a_day_of_messages_matches_the_golden_output() -> None:
    done = simulate("-c", "config.yaml", "events.jsonl", "--online", "111")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (HERE / "expected.txt").read_text(encoding="utf-8")


def test_raw_platform_payloads_and_refusals() -> None:
    update = {
        "update_id": 5,
        "message": {
            "message_id": 7,
            "date": 1795510800,
            "chat": {"id": 42, "type": "private", "first_name": "Ivan"},
            "from": {"id": 42, "is_bot": False, "first_name": "Ivan"},
            "text": "Привет",
        },
    }
    line = {"at": "2026-11-24T10:00:00+03:00", "account": "tg_shop", "payload": update}
    done = simulate("-c", "config.yaml", "--raw", "-", stdin=json.dumps(line) + "\n")
    assert done.returncode == 0, done.stderr
    assert "Ivan (telegram · tg_shop): Привет" in done.stdout
    assert "BP-20261124-0001 task 1 new" in done.stdout  # nobody online: nobody assigned

    bad = simulate("-c", "config.yaml", "-", stdin='{"account": "nope", "text": "x"}\n')
    assert bad.returncode != 0 and "give the time" in bad.stderr
    bad = simulate(
        "-c", "config.yaml", "-", stdin='{"at": "2026-11-24T10:00", "account": "nope"}\n'
    )
    assert "no channel account 'nope'" in bad.stderr
    assert simulate("-c", "missing.yaml", "events.jsonl").returncode == 2
