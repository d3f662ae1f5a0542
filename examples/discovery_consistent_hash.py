"""Key affinity: consistent_hash sends a key to the same instance; few keys move on change."""

from fyerreg import Discovery, Instance, MemoryRegistry

with MemoryRegistry() as registry:
    for n in range(4):
        registry.register(Instance.new("cache", "v1", f"127.0.0.1:{9000 + n}", id=f"cache-{n}"))

    with Discovery(registry, balancer="consistent_hash") as discovery:
        keys = [f"user-{k}" for k in range(1000)]
        before = {k: discovery.select("cache", "v1", key=k).id for k in keys}
        print("sticky:", all(discovery.select("cache", "v1", key=k).id == before[k] for k in keys))

        registry.register(Instance.new("cache", "v1", "127.0.0.1:9004", id="cache-4"))
        after = {k: discovery.select("cache", "v1", key=k).id for k in keys}
        moved = [k for k in keys if before[k] != after[k]]
        print("moved only to the new instance:", {after[k] for k in moved} == {"cache-4"})
        print("about 1/5 of keys moved:", 100 < len(moved) < 350)
