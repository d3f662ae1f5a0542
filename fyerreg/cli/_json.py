"""The ``--json`` option every command that prints data takes: machine-readable output on stdout.

A command given ``--json`` prints only JSON on stdout (an array, ``[]`` when nothing
matched, or one object per line for a command that runs on); messages stay on stderr.
"""

from __future__ import annotations

import argparse

__all__ = ["add_json_option"]


def add_json_option(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--json`` (``args.json``) to ``parser``; ``help`` says what is printed."""
    parser.add_argument("--json", action="store_true", help=help)
