"""Load-aware balancers fed by call feedback: least_requests, p2c and fastest.

``with discovery.pick(...) as inst:`` times the call, counts it in flight and records
an exception as a failure; ``discovery.report(inst, latency=..., error=...)`` does the
same for callers that cannot wrap the call.
"""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from fyerreg import Discovery, Instance, MemoryRegistry

LATENCY = {"fast": 0.002, "slow": 0.020}  # seconds, as every latency in fyerreg


def call(discovery: Discovery) -> str:
    with discovery.pick("greeter", "v1") as inst:
        time.sleep(LATENCY[inst.id])  # stands for a real request to inst.address
    return inst.id


with MemoryRegistry() as registry:
    registry.register(Instance.new("greeter", "v1", "127.0.0.1:8001", id="fast"))
    registry.register(Instance.new("greeter", "v1", "127.0.0.1:8002", id="slow"))

    for balancer in ("least_requests", "p2c", "fastest"):
        with Discovery(registry, balancer=balancer) as discovery, ThreadPoolExecutor(4) as pool:
            used = Counter(pool.map(lambda _: call(discovery), range(200)))
            print(f"{balancer}: {used['fast']} calls to fast, {used['slow']} to slow")

    with Discovery(registry, balancer="p2c") as discovery:
        inst = discovery.select("greeter", "v1")
        discovery.report(inst, latency=0.250, error=TimeoutError("read timed out"))
        errors = sum(e["value"] for e in discovery.stats()["counters"]["instance_errors"])
        print("errors recorded:", errors)
