"""gRPC's native log lines kept at ERROR unless the user chose a level.

gRPC's C core writes its own lines (``I1202 ... Handshake failed ...``) to stderr, past
Python logging; from grpcio 1.65 on, with ``GRPC_VERBOSITY`` unset it leaves absl's
default (INFO) in place. The core reads ``GRPC_VERBOSITY`` once, when its extension
module ``grpc._cython.cygrpc`` is loaded (the first ``import grpc``): set later, the
variable changes nothing in this process, and grpcio offers no call to change the level
afterwards. So :func:`quiet_grpc` runs before fyerreg's own code first imports grpc.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["VARIABLE", "quiet_grpc"]

VARIABLE = "GRPC_VERBOSITY"

log = logging.getLogger("fyerreg.grpc")

_CORE_MODULE = "grpc._cython.cygrpc"
_told = False


def quiet_grpc() -> bool:
    """Set ``GRPC_VERBOSITY=ERROR`` in ``os.environ`` unless it is set already; True when it was set here.

    A level the user set (even an empty one) is kept. When gRPC is already loaded
    and the variable unset, nothing is set (it could not take effect) and a debug line
    says how to quiet it: ``GRPC_VERBOSITY=ERROR`` in the process's environment.
    """
    global _told
    if VARIABLE in os.environ:
        return False
    if _CORE_MODULE in sys.modules:
        if not _told:
            _told = True
            log.debug("grpc was imported before fyerreg could set %s=ERROR; its own log lines keep absl's "
                      "level: set %s=ERROR in the environment to quiet them", VARIABLE, VARIABLE)
        return False
    os.environ[VARIABLE] = "ERROR"
    return True
