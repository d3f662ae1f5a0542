"""The README (a landing page) and the quickstart of the docs are the real thing: checked and run here.

Every other code block of the README and of docs/ is run or checked by tests/docs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

from tests.docs.blocks import section

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
QUICKSTART = ROOT / "examples" / "memory_quickstart.py"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"

def _blocks(text: str) -> List[Tuple[str, str]]:
    """(language, body) of every fenced code block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]


def _section(heading: str, page: Path = GETTING_STARTED) -> str:
    return section(page, heading)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_readme_opens_with_what_fyerreg_is_then_the_three_commands() -> None:
    assert README.startswith("# fyerreg\n\nfyerreg is a service registry and discovery library")
    _, first = _blocks(README)[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert commands == ["make demo", "make test", "make docs"]
    makefile = (ROOT / "Makefile").read_text()
    assert all(re.search(rf"^{target}:", makefile, re.M) for target in ("demo", "test", "docs"))


def test_readme_quickstart_is_the_example_file() -> None:
    python_blocks = [body for lang, body in _blocks(_section("## Quickstart")) if lang == "python"]
    assert python_blocks == [QUICKSTART.read_text()]


def test_quickstart_runs_and_prints_what_the_readme_says() -> None:
    result = _run(str(QUICKSTART))
    assert result.returncode == 0, result.stderr
    [printed] = [body for lang, body in _blocks(_section("## Quickstart")) if lang == "text"]
    assert result.stdout == printed
    assert "listed: ['127.0.0.1:8001', '127.0.0.1:8002']" in result.stdout
    assert result.stdout.splitlines()[-1] == "snapshot: [('greeter-b', 50)]"


def test_demo_runs_every_example() -> None:
    result = _run("examples/demo.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("== memory: memory_quickstart.py\n")
    assert "snapshot: [('greeter-b', 50)]" in result.stdout


def test_demo_rejects_an_unknown_name() -> None:
    result = _run("examples/demo.py", "nope")
    assert result.returncode == 2
    assert "unknown demo(s) nope" in result.stderr


def test_testing_guide_etcd_server_snippet_runs() -> None:
    guide = (ROOT / "docs" / "guides" / "testing.md").read_text()
    [snippet] = [body for lang, body in _blocks(guide) if lang == "python" and "EtcdServer()" in body]
    result = _run("-c", snippet)
    assert result.returncode == 0, result.stderr


def test_make_clean_removes_every_ignored_build_output() -> None:
    recipe = re.search(r"^clean:\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    ignored = [line.rstrip("/") for line in (ROOT / ".gitignore").read_text().split() if not line.startswith("#")]
    removed = recipe.replace("$(VENV)", ".venv").split()
    missing = [path for path in ignored if path not in removed and path != "*.pyc"]  # *.pyc: in __pycache__
    assert missing == [], f"make clean leaves {missing}"


def test_reliability_names_only_tests_that_exist() -> None:
    text = (ROOT / "RELIABILITY.md").read_text()
    checked = 0
    for table in re.split(r"\n\n", text):
        rows = [line for line in table.splitlines() if line.startswith("| ")]
        first_file = None
        for row in rows:
            for ref in re.findall(r"`((?:[\w/]+\.py|…)(?:::\w+(?:\[\w+\])?)?)`", row):
                path, _, name = ref.partition("::")
                if path == "…":
                    assert first_file is not None, ref
                    path = first_file
                first_file = first_file or path
                source = (ROOT / "tests" / path).read_text()
                assert not name or f"def {name.split('[')[0]}(" in source, f"{ref}: no such test in {path}"
                checked += 1
    assert checked > 30


def test_readme_is_a_landing_page_with_one_short_example_and_links_that_resolve() -> None:
    python_blocks = [body for lang, body in _blocks(README) if lang == "python"]
    assert len(python_blocks) == 1 and len(python_blocks[0].splitlines()) <= 15
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    assert "docs/getting-started.md" in links and "docs/project/contributing.md" in links
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert missing == []
    assert "make docs" in README


def test_readme_installs_only_what_works_today() -> None:
    [install] = [body for lang, body in _blocks(section(ROOT / "README.md", "## Install")) if lang == "sh"]
    commands = [line.split("#")[0].strip() for line in install.splitlines()]
    assert commands[:3] == ["pip install .", "pip install '.[etcd-server]'", "python -m build"]
    assert re.fullmatch(r"pip install dist/fyerreg-[\d.]+-py3-none-any\.whl", commands[3])
