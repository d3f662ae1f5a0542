"""Serving registration: what a serving process registers (``InstanceSpec``) and how (``ServingRegistration``).

``address.py`` is the one parser of ``host:port`` and the rule for the advertised address;
``listeners.py`` finds, from inside a process, the port its server bound as 0.
"""

from __future__ import annotations

from .registration import ServingRegistration
from .spec import DEFAULT_DRAIN_DELAY, InstanceSpec

__all__ = ["InstanceSpec", "ServingRegistration", "DEFAULT_DRAIN_DELAY"]
