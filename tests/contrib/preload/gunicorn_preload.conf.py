"""gunicorn with 2 workers and preload_app: the master imports the app (live etcd client) before forking."""

import os

from fyerreg.contrib.gunicorn import GunicornRegistration

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "preload_app:app"
bind = f"127.0.0.1:{os.environ['PORT']}"
workers = 2
preload_app = True
control_socket_disable = True

fyerreg = GunicornRegistration("preloaded", "1.0.0", registry={"endpoints": os.environ["FYERREG_ETCD"].split(",")},
                               drain_delay=0.2)
when_ready = fyerreg.when_ready
on_exit = fyerreg.on_exit
