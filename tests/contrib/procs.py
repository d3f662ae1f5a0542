"""Helpers of the contrib tests: example programs run as processes, the records they leave in etcd."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, List, Optional

from tests.helpers import Proc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def python(*args: str, **kw: Any) -> Proc:
    return Proc([sys.executable, *args], **kw)


def instances(etcd_client: Any, service: str) -> List[Dict[str, Any]]:
    """The records of ``service`` in etcd, read raw (Go fyer-rpc's key layout)."""
    return [json.loads(value) for value, _ in etcd_client.get_prefix(f"/fyerrpc/services/{service}/")]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def ask_concurrently(ask: Callable[[], None], times: int = 4) -> None:
    """Run ``ask`` in ``times`` threads at once: with gunicorn's sync workers, a busy worker leaves
    some requests to the others (sequential requests may all land on one worker)."""
    askers = [threading.Thread(target=ask) for _ in range(times)]
    for t in askers:
        t.start()
    for t in askers:
        t.join(30)


def some_thread_inside(function: str) -> bool:
    """True while some thread of this process runs ``function`` (anywhere in its stack)."""
    for frame in sys._current_frames().values():
        walk: Optional[FrameType] = frame
        while walk is not None:
            if walk.f_code.co_name == function:
                return True
            walk = walk.f_back
    return False
