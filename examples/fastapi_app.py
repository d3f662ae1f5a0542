"""A FastAPI app that registers itself as "hello-fastapi" while uvicorn serves it.

    FYERREG_ETCD=127.0.0.1:2379 uvicorn --app-dir examples fastapi_app:app --port 0
    FYERREG_ETCD=127.0.0.1:2379 uvicorn --app-dir examples fastapi_app:app --port 8000 --workers 2
    python examples/fastapi_app.py --port 8000

GET /hello/{name} answers with the pid of the worker process that served it.
"""

from __future__ import annotations

import os
from typing import Any, Dict

from fastapi import FastAPI

from fyerreg.contrib.asgi import ASGIRegistration

registration = ASGIRegistration(
    "hello-fastapi", "1.0.0",
    registry={"endpoints": os.environ.get("FYERREG_ETCD", "127.0.0.1:2379").split(","), "ttl": 5},
    drain_delay=0.5,  # after SIGTERM deregisters, uvicorn serves this long before it stops
)
app = FastAPI(lifespan=registration.lifespan())


@app.get("/hello/{name}")
async def hello(name: str) -> Dict[str, Any]:
    return {"message": f"Hello {name}", "pid": os.getpid()}


if __name__ == "__main__":
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
