"""The gRPC tests use the example's generated greeter modules, which import each other by their plain name."""

from __future__ import annotations

import sys

from tests.contrib.procs import EXAMPLES

if str(EXAMPLES) not in sys.path:
    sys.path.append(str(EXAMPLES))  # last: nothing the other tests import is shadowed
