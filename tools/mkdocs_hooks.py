"""MkDocs hooks: the repository's top-level documents become pages of the site, unmoved."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("ARCHITECTURE.md", "BENCHMARKS.md", "RELIABILITY.md", "SCALE.md", "CHANGELOG.md", "SECURITY.md")
ASSETS = ("bench/plots",)

log = logging.getLogger("mkdocs.plugins.fyerreg")


def on_files(files: Files, config: Any) -> Files:
    """Add each top-level document, and the plots BENCHMARKS.md shows, under its own path."""
    for name in DOCUMENTS:
        path = ROOT / name
        if path.exists():
            files.append(File.generated(config, name, abs_src_path=str(path)))
        else:  # a missing document is a nav entry that does not resolve: strict mode fails on it
            log.warning("%s is missing from the repository", name)
    for folder in ASSETS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file():
                files.append(File.generated(config, path.relative_to(ROOT).as_posix(), abs_src_path=str(path)))
    return files
