"""Register two instances, watch them from another registry, deregister one."""

from fyerreg import Instance, MemoryRegistry, MemoryStore

# Registries on one store see each other, as processes sharing one etcd do.
store = MemoryStore()
a = Instance.new("greeter", "v1", "127.0.0.1:8001", id="greeter-a")
b = Instance.new("greeter", "v1", "127.0.0.1:8002", id="greeter-b", weight=50)

with MemoryRegistry(store=store) as provider, MemoryRegistry(store=store) as consumer:
    provider.register(a)
    provider.register(b)

    with consumer.subscribe("greeter", "v1") as updates:
        print("listed:", [inst.address for inst in consumer.list_services("greeter", "v1")])

        snapshot = updates.get(timeout=5)  # the first snapshot is the current state
        print("snapshot:", [(inst.id, inst.weight) for inst in snapshot])

        provider.deregister(a)
        snapshot = updates.get(timeout=5)  # each change brings the full new state
        print("snapshot:", [(inst.id, inst.weight) for inst in snapshot])
