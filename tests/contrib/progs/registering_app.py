"""An app that starts a ServiceRegistration with handle_signals, for signal tests run as a real process.

    python registering_app.py ENDPOINT PORT wait|nowait

Connects, prints "connected", reads one line from stdin (the test pauses etcd first),
then starts the registration. A helper thread prints "in register()" once some thread
is inside the registry's register call, so the test signals exactly then.
"""

import socket
import sys
import threading
import time
from types import FrameType
from typing import Optional

from fyerreg import EtcdRegistry
from fyerreg.contrib.wsgi import ServiceRegistration


def report_when_registering() -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(frame_in(f, "_do_register") for f in sys._current_frames().values()):
            print("in register()", flush=True)
            return
        time.sleep(0.01)


def frame_in(frame: Optional[FrameType], name: str) -> bool:
    while frame is not None:
        if frame.f_code.co_name == name:
            return True
        frame = frame.f_back
    return False


def main() -> None:
    endpoint, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    listener = socket.create_server(("127.0.0.1", port))
    registry = EtcdRegistry(endpoints=[endpoint], ttl=3, dial_timeout=2)
    print("connected", flush=True)
    sys.stdin.readline()
    threading.Thread(target=report_when_registering, daemon=True).start()
    registration = ServiceRegistration(registry, "sigterm-app", address=f"127.0.0.1:{port}",
                                       wait_ready=mode == "wait", handle_signals=True, drain_delay=0)
    registration.start()
    print("started", flush=True)
    threading.Event().wait()
    listener.close()


if __name__ == "__main__":
    main()
