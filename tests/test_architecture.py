"""ARCHITECTURE.md names only files that exist, and each arrow of its flows names one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "ARCHITECTURE.md").read_text()
PATH = re.compile(r"\b(?:fyerreg|tests|examples|bench|tools)/[\w./]*[\w/]")


def test_every_path_in_architecture_md_exists() -> None:
    paths = sorted(set(PATH.findall(TEXT)))
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"
    assert len(paths) > 25


def test_every_arrow_of_the_flows_names_a_file() -> None:
    arrows = [line for line in TEXT.splitlines() if line.lstrip().startswith("-> ")]
    assert len(arrows) >= 12  # registration: spec .. client; discovery: subscription .. feedback
    for line in arrows:
        assert PATH.search(line), f"an arrow without a file: {line.strip()}"
