"""Instances and helpers for the contract suite."""

from __future__ import annotations

from typing import Any, List

from fyerreg import Instance

SERVICE = "contract-svc"


def make_instance(id: str, *, version: str = "v1", service: str = SERVICE, port: int = 8000,
                  **fields: Any) -> Instance:
    """A valid instance of the contract suite's service."""
    return Instance(id=id, service=service, version=version, address=f"127.0.0.1:{port}", **fields)


def unstamped(instances: List[Instance]) -> List[Instance]:
    """``instances`` with ``updated_at`` zeroed, to compare with what was registered."""
    return [inst.replace(updated_at=0) for inst in instances]
