"""A Flask app that registers itself as "hello-flask" while it serves, and finds its peers.

    python examples/flask_app.py --port 5001 [--etcd 127.0.0.1:2379]
    gunicorn -c examples/gunicorn.conf.py      # the same app under gunicorn

GET /hello/<name> answers; GET /peers lists the registered instances of hello-flask,
through the app's own discovery.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, Optional

from flask import Flask, current_app, jsonify

from fyerreg.contrib.flask import FyerReg


def create_app(port: Optional[int] = None, etcd: Optional[str] = None) -> Flask:
    app = Flask("hello-flask")
    app.config.update(
        FYERREG_SERVICE_NAME="hello-flask",
        FYERREG_SERVICE_VERSION="1.0.0",
        FYERREG_ADDRESS=f"127.0.0.1:{port or os.environ.get('PORT', '5000')}",
        FYERREG_ENDPOINTS=(etcd or os.environ.get("FYERREG_ETCD", "127.0.0.1:2379")).split(","),
        FYERREG_TTL=5,
        FYERREG_HANDLE_SIGNALS=True,  # SIGTERM deregisters before the server stops
    )
    FyerReg(app)

    @app.get("/hello/<name>")
    def hello(name: str) -> Dict[str, Any]:
        return {"message": f"Hello {name}", "pid": os.getpid()}

    @app.get("/peers")
    def peers() -> Any:
        discovery = current_app.extensions["fyerreg"].discovery
        return jsonify(sorted(inst.address for inst in discovery.instances("hello-flask", "1.0.0")))

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--etcd", default="127.0.0.1:2379")
    args = parser.parse_args()
    create_app(args.port, args.etcd).run(host="127.0.0.1", port=args.port, threaded=True)
