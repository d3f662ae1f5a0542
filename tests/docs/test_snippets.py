"""Every code block of the README and of docs/ is run, checked, or marked a fragment
(the rules: docs/project/contributing.md)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import pytest

from fyerreg.cli import _COMMANDS
from fyerreg.cli._parser import build_parser

from .blocks import FRAGMENT_OF, PAGES, ROOT, Block, all_blocks, printed_after

BLOCKS: Dict[str, Block] = {block.where: block for block in all_blocks()}


def _of(*kinds: str) -> List[str]:
    return [where for where, block in BLOCKS.items() if block.kind in kinds]


def test_the_docs_pages_and_the_readme_are_all_read() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/index.md", "docs/getting-started.md", "docs/guides/discovery.md",
            "docs/operations/tls-auth.md", "docs/project/contributing.md"} <= names
    kinds = {block.kind for block in BLOCKS.values()}
    assert {"fragment", "example", "runnable", "commands", "output"} <= kinds, kinds


def test_every_block_is_run_checked_or_a_marked_fragment() -> None:
    unknown = [f"{where} ({block.lang or 'no language'})" for where, block in BLOCKS.items() if block.kind == "unknown"]
    assert unknown == [], "blocks neither run, checked nor marked a fragment (docs/project/contributing.md)"


@pytest.mark.parametrize("where", [w for w in _of("fragment") if FRAGMENT_OF.match(BLOCKS[w].body)])
def test_fragment_is_a_verbatim_excerpt_of_the_example_it_names(where: str) -> None:
    first, _, rest = BLOCKS[where].body.partition("\n")
    match = FRAGMENT_OF.match(first)
    assert match is not None
    source = (ROOT / match.group(1)).read_text().splitlines()
    chunks = [textwrap.dedent(chunk).strip("\n") for chunk in re.split(r"^\s*\.\.\.\n", rest, flags=re.M)]
    start = 0
    for chunk in chunks:
        size = len(chunk.splitlines())
        windows = [i for i in range(start, len(source) - size + 1)
                   if textwrap.dedent("\n".join(source[i:i + size])) == chunk]
        assert windows, f"{where}: not in {match.group(1)} (after line {start}):\n{chunk}"
        start = windows[0] + size


@pytest.mark.parametrize("where", [w for w in _of("fragment") if not FRAGMENT_OF.match(BLOCKS[w].body)])
def test_a_plain_fragment_says_why_it_is_not_run(where: str) -> None:
    first = BLOCKS[where].body.partition("\n")[0]
    assert re.match(r"^# fragment: \w+", first), f"{where}: '# fragment: <why it is not run>', not {first!r}"


@pytest.mark.parametrize("where", _of("example"))
def test_whole_example_snippets_are_example_files_that_a_test_runs(where: str) -> None:
    path = BLOCKS[where].example
    assert path is not None
    runners = [p for p in (ROOT / "tests").rglob("test_*.py") if path.name in p.read_text()
               or (path.name.startswith("discovery_") and "discovery_*.py" in p.read_text())]
    assert runners, f"no test runs {path.name}"


@pytest.mark.parametrize("where", [w for w in _of("example") if printed_after(BLOCKS[w]) is not None])
def test_an_example_prints_what_the_docs_say(where: str) -> None:
    block = BLOCKS[where]
    assert block.example is not None
    result = subprocess.run([sys.executable, str(block.example)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed_after(block)


@pytest.mark.etcd
@pytest.mark.parametrize("where", _of("runnable"))
def test_snippet_runs_as_written(where: str, etcd_endpoints: List[str], tmp_path: Path) -> None:
    # The only change: the documented local etcd address becomes the test session's etcd.
    block = BLOCKS[where]
    body = block.body.replace("127.0.0.1:2379", etcd_endpoints[0])
    if re.search(r"^def test_", body, re.M):
        (tmp_path / "test_snippet.py").write_text(body)
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert " passed" in result.stdout
        return
    result = subprocess.run([sys.executable, "-c", body], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
    printed = printed_after(block)
    if printed is not None:
        assert result.stdout == printed, where


def _commands(block: Block) -> List[List[str]]:
    """The command lines of a block, as argv (comments, ``$ `` prompts and VAR=value prefixes dropped)."""
    lines = block.body.splitlines()
    if block.lang == "text":
        lines = [line[2:] for line in lines if line.startswith("$ fyerreg")]
    commands = []
    for line in lines:
        argv = shlex.split(line, comments=True)
        while argv and re.match(r"^[A-Z_]+=", argv[0]):
            argv.pop(0)
        if argv:
            commands.append(argv)
    return commands


_MAKE_TARGETS = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
_INSTALLS = {("pip", "install", "."), ("pip", "install", ".[etcd-server]"), ("python", "-m", "build")}


def _check(argv: List[str]) -> None:
    program, args = argv[0], argv[1:]
    if program == "make":
        assert all(arg in _MAKE_TARGETS for arg in args), f"no such make target in {argv}"
    elif program == "fyerreg":
        try:
            build_parser(_COMMANDS).parse_args(args)
        except SystemExit as exc:
            raise AssertionError(f"fyerreg does not take {shlex.join(args)}") from exc
    elif program == "pip":
        wheel = args[-1] if args[:1] == ["install"] else ""
        assert tuple(argv) in _INSTALLS or re.fullmatch(r"dist/fyerreg-[\d.]+-py3-none-any\.whl", wheel), argv
    elif program in ("python", "flask", "gunicorn", "uvicorn"):
        assert tuple(argv) in _INSTALLS or any(arg.startswith("examples/") for arg in args), argv
        for arg in args:
            if arg.startswith("examples/"):
                assert (ROOT / arg).exists() or (ROOT / f"{arg}.py").exists(), f"{argv}: no {arg}"
    else:
        raise AssertionError(f"{argv}: not a command the docs' tests check (docs/project/contributing.md)")


@pytest.mark.parametrize("where", [w for w in _of("commands", "output") if _commands(BLOCKS[w])])
def test_commands_exist_as_written(where: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in _commands(BLOCKS[where]):
        _check(argv)


def test_a_block_with_no_language_or_an_unchecked_one_is_caught(tmp_path: Path) -> None:
    from .blocks import blocks

    page = tmp_path / "page.md"
    page.write_text("```\nls\n```\n\n```js\nx()\n```\n\n```yaml\na: 1\n```\n\n"
                    "```python\n# fragment: needs a server\n```\n")
    assert [block.kind for block in blocks(page)] == ["unknown", "unknown", "unknown", "fragment"]
    with pytest.raises(AssertionError, match="not a command"):
        _check(["curl", "http://127.0.0.1/"])
    with pytest.raises(AssertionError, match="does not take"):
        _check(["fyerreg", "list", "orders", "--no-such-flag"])
