"""Helpers of the etcd backend tests."""

from __future__ import annotations

import functools
import os
import sys
from typing import Dict

from tests import helpers

SERVICE = "etcd-svc"


make_instance = functools.partial(helpers.make_instance, service=SERVICE)
"""A valid instance of these tests' service (``make_instance(id, version=, port=, **fields)``)."""


def child_env() -> Dict[str, str]:
    """The environment for a Python child that imports this checkout's fyerreg."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


PYTHON = sys.executable

