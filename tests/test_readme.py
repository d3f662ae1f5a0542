"""The README's commands, quickstart and snippets are the real thing: checked and run here."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
QUICKSTART = ROOT / "examples" / "memory_quickstart.py"

def _blocks(text: str) -> List[Tuple[str, str]]:
    """(language, body) of every fenced code block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]


_FRAGMENT = re.compile(r"^# fragment of (examples/\S+)")
_EXAMPLE_TEXTS = {path.read_text(): path for path in (ROOT / "examples").glob("*.py")}


def _python_snippets() -> Dict[str, str]:
    """Every python block of the README, keyed by the line it starts on."""
    found: Dict[str, str] = {}
    for m in re.finditer(r"^```python\n(.*?)^```$", README, re.M | re.S):
        found[f"line{README[:m.start()].count(chr(10)) + 1}"] = m.group(1)
    return found


def _runnable(body: str) -> bool:
    return not _FRAGMENT.match(body) and body not in _EXAMPLE_TEXTS


def _section(heading: str) -> str:
    start = README.index(f"\n## {heading}\n")
    end = README.find("\n## ", start + 1)
    return README[start:] if end < 0 else README[start:end]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_readme_opens_with_what_fyerreg_is_then_the_two_commands() -> None:
    assert README.startswith("# fyerreg\n\nfyerreg is a service registry and discovery library")
    _, first = _blocks(README)[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_readme_quickstart_is_the_example_file() -> None:
    python_blocks = [body for lang, body in _blocks(_section("Quickstart")) if lang == "python"]
    assert python_blocks == [QUICKSTART.read_text()]


def test_quickstart_runs_and_prints_what_the_readme_says() -> None:
    result = _run(str(QUICKSTART))
    assert result.returncode == 0, result.stderr
    [printed] = [body for lang, body in _blocks(_section("Quickstart")) if lang == "text"]
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


def test_readme_etcd_server_snippet_runs() -> None:
    [snippet] = [body for lang, body in _blocks(README) if lang == "python" and "EtcdServer()" in body]
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


def test_every_python_snippet_is_runnable_an_example_file_or_a_marked_fragment() -> None:
    kinds = {"fragment": 0, "example": 0, "runnable": 0}
    for body in _python_snippets().values():
        kind = "fragment" if _FRAGMENT.match(body) else "example" if body in _EXAMPLE_TEXTS else "runnable"
        kinds[kind] += 1
    assert all(kinds.values()), kinds  # the README has each kind; the tests below check each


@pytest.mark.parametrize("where", [k for k, v in _python_snippets().items() if _FRAGMENT.match(v)])
def test_fragment_is_a_verbatim_excerpt_of_the_example_it_names(where: str) -> None:
    body = _python_snippets()[where]
    first, _, rest = body.partition("\n")
    match = _FRAGMENT.match(first)
    assert match is not None
    source = (ROOT / match.group(1)).read_text().splitlines()
    chunks = [textwrap.dedent(chunk).strip("\n") for chunk in re.split(r"^\s*\.\.\.\n", rest, flags=re.M)]
    start = 0
    for chunk in chunks:
        size = len(chunk.splitlines())
        windows = [i for i in range(start, len(source) - size + 1)
                   if textwrap.dedent("\n".join(source[i:i + size])) == chunk]
        assert windows, f"README {where}: not in {match.group(1)} (after line {start}):\n{chunk}"
        start = windows[0] + size


@pytest.mark.parametrize("where", [k for k, v in _python_snippets().items() if v in _EXAMPLE_TEXTS])
def test_whole_example_snippets_are_example_files_that_a_test_runs(where: str) -> None:
    path = _EXAMPLE_TEXTS[_python_snippets()[where]]
    runners = [p for p in (ROOT / "tests").rglob("test_*.py") if path.name in p.read_text()
               or (path.name.startswith("discovery_") and "discovery_*.py" in p.read_text())]
    assert runners, f"no test runs {path.name}"


@pytest.mark.etcd
@pytest.mark.parametrize("where", [k for k, v in _python_snippets().items() if _runnable(v)])
def test_snippet_runs_as_written(where: str, etcd_endpoints: List[str], tmp_path: Path) -> None:
    # The only change: the documented local etcd address becomes the test session's etcd.
    body = _python_snippets()[where].replace("127.0.0.1:2379", etcd_endpoints[0])
    if re.search(r"^def test_", body, re.M):
        (tmp_path / "test_snippet.py").write_text(body)
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert " passed" in result.stdout
        return
    result = subprocess.run([sys.executable, "-c", body], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"README {where} failed:\n{result.stderr}"
