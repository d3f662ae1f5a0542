"""Instances and helpers for the contract suite."""

from __future__ import annotations

import functools
from typing import List

from fyerreg import Instance
from tests import helpers

SERVICE = "contract-svc"


make_instance = functools.partial(helpers.make_instance, service=SERVICE)
"""A valid instance of the contract suite's service (``make_instance(id, version=, port=, **fields)``)."""


def unstamped(instances: List[Instance]) -> List[Instance]:
    """``instances`` with ``updated_at`` zeroed, to compare with what was registered."""
    return [inst.replace(updated_at=0) for inst in instances]
