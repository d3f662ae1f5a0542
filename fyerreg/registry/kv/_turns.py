"""A registration's write turns: what asking for one gets, and the errors of a write that had to give up."""

from __future__ import annotations

import enum

from ...errors import NotRegisteredError, RegistryClosedError, RegistryError, RegistryUnavailableError
from ._ops import Deadline

__all__ = ["Turn", "Finish", "busy_error", "overtaken_error", "remove_busy_error"]


class Turn(enum.Enum):
    TAKEN = "taken"
    FINISHED = "finished"  # removed or abandoned: nothing may be written for it any more
    TIMED_OUT = "timed out"  # another write still waits on the store


class Finish(enum.Enum):
    REMOVED = "deregistered"
    CLOSED = "closed"


def overtaken_error(key: str, call: str, finished: Finish) -> RegistryError:
    """The error of a write that close() or deregister() overtook (what it wrote is removed)."""
    if finished is Finish.CLOSED:
        return RegistryClosedError(f"the registry was closed during {call}() of {key}")
    return NotRegisteredError(f"{key} was deregistered during {call}()")


def busy_error(key: str, call: str, deadline: Deadline) -> RegistryUnavailableError:
    """The error of a write that found an earlier one still waiting past its ``deadline``."""
    return RegistryUnavailableError(f"{call} of {key}: an earlier write to it is still waiting "
                                    f"on the store after timeout={deadline.seconds}s")


def remove_busy_error(key: str, deadline: Deadline, ttl: float) -> RegistryUnavailableError:
    """The error of a deregister that found a write still waiting past its ``deadline``."""
    return RegistryUnavailableError(f"deregister of {key}: a write to it is still waiting on the store after "
                                    f"timeout={deadline.seconds}s; it removes the record when it ends, else the "
                                    f"lease expires within {ttl}s")
