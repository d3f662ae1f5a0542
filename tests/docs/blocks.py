"""The fenced code blocks of the README and of every page under docs/, and what kind each is."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FRAGMENT = re.compile(r"^# fragment\b")
FRAGMENT_OF = re.compile(r"^# fragment of (examples/\S+)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
_EXAMPLE_TEXTS: Dict[str, Path] = {path.read_text(): path for path in (ROOT / "examples").glob("*.py")}


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, and the prose just before it."""

    page: Path
    line: int
    lang: str
    body: str
    before: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def kind(self) -> str:
        """fragment, example (a whole file of examples/), runnable, commands, output, or unknown."""
        if self.lang in ("python", "yaml") and FRAGMENT.match(self.body):
            return "fragment"
        if self.lang == "python":
            return "example" if self.body in _EXAMPLE_TEXTS else "runnable"
        if self.lang == "sh":
            return "commands"
        if self.lang == "text":
            return "output"
        return "unknown"

    @property
    def example(self) -> Optional[Path]:
        return _EXAMPLE_TEXTS.get(self.body)


def blocks(page: Path) -> List[Block]:
    """Every fenced block of ``page``, in order."""
    text = page.read_text()
    found: List[Block] = []
    last_end = 0
    for m in _FENCE.finditer(text):
        found.append(Block(page, text[:m.start()].count("\n") + 1, m.group(1), m.group(2), text[last_end:m.start()]))
        last_end = m.end()
    return found


def all_blocks() -> List[Block]:
    return [block for page in PAGES for block in blocks(page)]


def printed_after(block: Block) -> Optional[str]:
    """The text block that follows ``block`` after a line "It prints:", if there is one."""
    page_blocks = blocks(block.page)
    i = page_blocks.index(block)
    if i + 1 < len(page_blocks):
        after = page_blocks[i + 1]
        if after.lang == "text" and after.before.strip() == "It prints:":
            return after.body
    return None


def section(page: Path, heading: str) -> str:
    """The part of ``page`` under the heading line ``heading`` (e.g. "## Install"), up to the next
    heading of the same or a higher level."""
    text = page.read_text()
    level = len(heading.split(" ")[0])
    start = 0 if text.startswith(f"{heading}\n") else text.index(f"\n{heading}\n") + 1
    body = start + len(heading) + 1
    ends = [body + m.start() for m in re.finditer(r"^(#+) ", text[body:], re.M)
            if len(m.group(1)) <= level and not _in_fence(text, body + m.start())]
    return text[start:ends[0]] if ends else text[start:]


def _in_fence(text: str, pos: int) -> bool:
    return text[:pos].count("\n```") % 2 == 1
