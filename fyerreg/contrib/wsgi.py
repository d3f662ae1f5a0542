"""Register any WSGI app (or any server) while it serves: ``ServiceRegistration``."""

from __future__ import annotations

from typing import Mapping, Optional, Union

from ..naming import DEFAULT_WEIGHT
from ..registry.base import Registry
from ..serving import DEFAULT_DRAIN_DELAY, InstanceSpec, ServingRegistration
from ..serving.health import Check, HealthCheck

__all__ = ["ServiceRegistration"]


class ServiceRegistration(ServingRegistration):
    """Keeps one instance registered while an app serves on ``address``.

    The lifecycle is :class:`fyerreg.serving.ServingRegistration`'s (register once the
    address answers, deregister and drain first on stop); this spells its
    :class:`~fyerreg.serving.InstanceSpec` as keyword arguments. ``address`` is where the
    app listens (``":8000"``, ``"0.0.0.0:8000"``); ``advertise_address`` what others dial
    (by default ``FYERREG_ADVERTISE_ADDRESS``, else when the app listens on every interface
    ``POD_IP``, ``HOST_IP`` or the outbound IP).
    ``health_check`` gates the advertised status (see :class:`~fyerreg.serving.health.HealthCheck`).
    """

    def __init__(
        self,
        registry: Registry,
        service: str,
        version: str = "1.0.0",
        *,
        address: str,
        advertise_address: Optional[str] = None,
        instance_id: Optional[str] = None,
        weight: int = DEFAULT_WEIGHT,
        metadata: Optional[Mapping[str, str]] = None,
        wait_ready: bool = True,
        ready_probe: str = "connect",
        ready_timeout: float = 60.0,
        handle_signals: bool = False,
        drain_delay: float = DEFAULT_DRAIN_DELAY,
        deregister_at_exit: bool = True,
        timeout: Optional[float] = None,
        health_check: Union[HealthCheck, Check, str, None] = None,
    ) -> None:
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a fyerreg Registry, got {type(registry).__name__}")
        spec = InstanceSpec(service, version, address, advertise_address=advertise_address,
                            instance_id=instance_id, weight=weight, metadata=metadata or {},
                            drain_delay=drain_delay)
        super().__init__(registry, spec, wait_ready=wait_ready, ready_probe=ready_probe,
                         ready_timeout=ready_timeout, handle_signals=handle_signals,
                         deregister_at_exit=deregister_at_exit, timeout=timeout,
                         health_check=health_check)
