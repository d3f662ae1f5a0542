"""Exit codes of the ``fyerreg`` command and the error that carries one."""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_NOT_FOUND", "EXIT_USAGE", "EXIT_UNAVAILABLE", "CommandError"]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
"""Not found, nothing matched, or the command failed for another reason."""
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
"""etcd unreachable, or it rejected the credentials."""


class CommandError(Exception):
    """Ends a command with ``message`` on stderr and exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_NOT_FOUND) -> None:
        super().__init__(message)
        self.code = code
