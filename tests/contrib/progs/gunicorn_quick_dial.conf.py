"""examples/gunicorn.conf.py with a 1 s dial timeout, so that etcd being down fails attempts quickly."""

import os
import sys

from fyerreg.contrib.gunicorn import GunicornRegistration

examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "examples")
sys.path.insert(0, examples)
port = os.environ["PORT"]
etcd = os.environ["FYERREG_ETCD"]

chdir = examples
wsgi_app = f"flask_app:create_app(port={port}, etcd={etcd!r})"
bind = f"127.0.0.1:{port}"
workers = 2
control_socket_disable = True

fyerreg = GunicornRegistration("hello-flask", "1.0.0", registry={"endpoints": [etcd], "ttl": 5, "dial_timeout": 1},
                               drain_delay=0.5)
when_ready = fyerreg.when_ready
on_exit = fyerreg.on_exit
