"""Filters and client-side health: zone preference with fallback, outlier ejection, empty-set protection."""

from fyerreg import Discovery, Ejection, Instance, MemoryRegistry, prefer_zone

with MemoryRegistry() as registry:
    near = Instance.new("greeter", "v1", "10.0.1.1:8000", id="near", metadata={"zone": "eu-1a"})
    far = Instance.new("greeter", "v1", "10.0.2.1:8000", id="far", metadata={"zone": "eu-1b"})
    registry.register(near)
    registry.register(far)

    with Discovery(
        registry,
        filters=[prefer_zone("eu-1a")],
        ejection=Ejection(consecutive_failures=3, base_time=30.0, max_time=300.0, max_percent=50.0),
        protect_empty=60.0,  # a wiped registry does not black-hole traffic for a minute
    ) as discovery:
        print("prefers its zone:", discovery.select("greeter", "v1").id)
        for _ in range(3):
            try:
                with discovery.pick("greeter", "v1"):
                    raise ConnectionRefusedError("near is down")
            except ConnectionRefusedError:
                pass
        print("after 3 failures, falls back to:", discovery.select("greeter", "v1").id)

        registry.deregister(near)
        registry.deregister(far)
        print("registry emptied, still serving:", discovery.select("greeter", "v1").id)
