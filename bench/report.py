"""Benchmark results: rows of (fyerreg, baseline, ratio, goal), the console table and BENCHMARKS.md."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence


@dataclasses.dataclass
class Row:
    """One figure of fyerreg beside its baseline, measured in the same run.

    ``met`` is None when the row has no goal (or could not be measured).
    """

    metric: str
    value: Optional[float]
    baseline: Optional[float]
    unit: str
    goal: str = ""
    met: Optional[bool] = None
    baseline_name: str = ""

    @property
    def ratio(self) -> Optional[float]:
        if self.value is None or self.baseline is None or not self.baseline or math.isnan(self.baseline):
            return None
        return self.value / self.baseline


@dataclasses.dataclass
class Section:
    """The result of one benchmark: summary rows for the main table, plus detail for BENCHMARKS.md."""

    key: str
    title: str
    method: str
    rows: List[Row] = dataclasses.field(default_factory=list)
    details: List[str] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)
    plots: List[str] = dataclasses.field(default_factory=list)
    data: Dict[str, Any] = dataclasses.field(default_factory=dict)
    pending: Optional[str] = None
    error: Optional[str] = None
    seconds: float = 0.0

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    @property
    def missed(self) -> List[Row]:
        return [row for row in self.rows if row.met is False]


def fmt(value: Optional[float], unit: str = "") -> str:
    """A number with a precision that suits its size (``-`` for none)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def _ratio(row: Row) -> str:
    ratio = row.ratio
    return "-" if ratio is None else f"{ratio:.3g}x"


def _verdict(row: Row) -> str:
    return {True: "ok", False: "MISSED", None: ""}[row.met]


def _cells(section: Section, row: Row) -> List[str]:
    baseline = fmt(row.baseline, row.unit)
    if row.baseline_name and row.baseline is not None:
        baseline = f"{baseline} ({row.baseline_name})"
    return [section.title, row.metric, fmt(row.value, row.unit), baseline, _ratio(row), row.goal, _verdict(row)]


HEADERS = ["benchmark", "metric", "fyerreg", "baseline", "ratio", "goal", ""]


def text_table(sections: Sequence[Section]) -> str:
    """The console table: one line per row, aligned columns."""
    lines: List[List[str]] = []
    notes: List[str] = []
    for section in sections:
        if section.error:
            notes.append(f"{section.title}: ERROR {section.error.strip().splitlines()[-1]}")
        elif section.pending:
            notes.append(f"{section.title}: pending, {section.pending}")
        lines.extend(_cells(section, row) for row in section.rows)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(HEADERS)]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    previous = None
    for line in lines:
        shown = list(line)
        if line[0] == previous:
            shown[0] = ""
        previous = line[0]
        out.append("  ".join(cell.ljust(w) for cell, w in zip(shown, widths)).rstrip())
    return "\n".join([*out, *notes])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out.extend("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)
    return "\n".join(out)


def summary_markdown(sections: Sequence[Section]) -> str:
    rows: List[List[str]] = []
    for section in sections:
        if section.error:
            rows.append([section.title, "**error**", section.error.splitlines()[-1], "", "", "", ""])
        elif section.pending and not section.rows:
            rows.append([section.title, "pending", section.pending, "", "", "", ""])
        for row in section.rows:
            cells = _cells(section, row)
            if cells[-1] == "MISSED":
                cells[-1] = "**missed**"
            rows.append(cells)
    return markdown_table(HEADERS, rows)


def write_markdown(path: str, *, title: str, intro: str, machine: str, sections: Sequence[Section],
                   plot_dir: str) -> None:
    """Write BENCHMARKS.md: machine, the summary table, then one part per benchmark with its plots."""
    rel_plots = os.path.relpath(plot_dir, os.path.dirname(os.path.abspath(path)) or ".")
    parts = [f"# {title}", intro, "## Machine", machine, "## Summary", summary_markdown(sections)]
    missed = [(s, r) for s in sections for r in s.missed]
    if missed:
        parts.append("Goals missed in this run: " + "; ".join(f"{s.title} — {r.metric}" for s, r in missed)
                     + ". Each benchmark's part below says by how much and what bounds it.")
    for number, section in enumerate(sections, 1):
        parts.append(f"## {number}. {section.title}")
        # The docstring's first line repeats the title.
        parts.append(section.method.split("\n", 1)[1] if "\n" in section.method else section.method)
        if section.error:
            parts.append(f"**This benchmark failed in this run:**\n\n```\n{section.error}\n```")
        if section.pending:
            parts.append(f"**Pending:** {section.pending}")
        parts.extend(section.details)
        for plot in section.plots:
            parts.append(f"![{section.title}]({rel_plots}/{plot})")
        parts.extend(section.notes)
        parts.append(f"_Took {section.seconds:.0f} s._")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join(p.strip() for p in parts if p.strip()) + "\n")


def write_json(path: str, *, machine: Dict[str, Any], sections: Sequence[Section]) -> None:
    """Every row and every raw series, so plots and tables can be checked or redrawn."""
    payload = {
        "machine": machine,
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "rows": [dataclasses.asdict(r) | {"ratio": r.ratio} for r in s.rows],
                "pending": s.pending,
                "error": s.error,
                "seconds": s.seconds,
                "data": s.data,
            }
            for s in sections
        ],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, default=float)
        f.write("\n")
