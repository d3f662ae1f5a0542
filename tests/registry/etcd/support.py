"""Helpers of the etcd backend tests."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Dict

from tests import helpers

SERVICE = "etcd-svc"


make_instance = functools.partial(helpers.make_instance, service=SERVICE)
"""A valid instance of these tests' service (``make_instance(id, version=, port=, **fields)``)."""


def child_env() -> Dict[str, str]:
    """The environment for a Python child that imports this checkout's fyerreg."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


PYTHON = sys.executable

