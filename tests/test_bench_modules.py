"""Every benchmark module still imports: they are not run by the suite (they measure,
they do not assert), so a renamed helper would otherwise break them unnoticed."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("*.py")))
def test_the_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")
