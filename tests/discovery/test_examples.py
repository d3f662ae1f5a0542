"""The discovery examples run, say what the discovery guide claims, and are its code verbatim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fyerreg.discovery import balancer_names

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("discovery_*.py"))

def discovery_section() -> str:
    return (ROOT / "docs" / "guides" / "discovery.md").read_text()


def test_every_example_is_in_the_guide_and_every_balancer_in_its_table() -> None:
    section = discovery_section()
    assert len(EXAMPLES) >= 5
    for path in EXAMPLES:
        assert f"```python\n{path.read_text()}```" in section, path.name
    for name in balancer_names():
        assert f"| `{name}`" in section, name


EXPECTED = {
    "discovery_rotation.py": ["round_robin: [('a', 4), ('b', 4)]",
                              "weighted_round_robin: [('a', 6), ('b', 2)]",
                              "interleaved, never more than 3 in a row: True"],
    "discovery_random.py": ["random: share of a ~ 0.5", "weighted_random: share of a ~ 0.8"],
    "discovery_consistent_hash.py": ["sticky: True", "moved only to the new instance: True",
                                     "about 1/5 of keys moved: True"],
    "discovery_health.py": ["prefers its zone: near", "after 3 failures, falls back to: far",
                            "registry emptied, still serving: far"],
    "discovery_load_aware.py": ["errors recorded: 1"],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path: Path) -> None:
    result = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in EXPECTED[path.name]:
        assert expected in lines, (expected, lines)
    if path.name == "discovery_load_aware.py":
        assert [line.split(":")[0] for line in lines[:3]] == ["least_requests", "p2c", "fastest"]
