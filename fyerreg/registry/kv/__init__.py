"""The registry on etcd's model (records bound to leases, prefix watches), for any client of its surface.

Nothing here imports gRPC: ``fyerreg.registry.etcd`` runs it over etcd
(``etcd._client.EtcdClient``), ``fyerreg.registry.memory`` over an in-process store. Each
registered instance's whole life is a ``_registration.Registration``; ``_records`` writes
lease-guarded records; ``_watch`` keeps a prefix's instances by a watch;
``_leased.LeasedRegistry`` is the registry both backends are.
"""
