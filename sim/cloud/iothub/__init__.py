"""A local IoT Hub and DPS that the real Azure SDKs talk to (issue 10).

- :mod:`.mqtt` MQTT 3.1.1 packets; :mod:`.broker` the MQTT server (sessions, routing);
- :mod:`.device_endpoint` the hub's device endpoint (SAS and X.509 auth, twin topics);
- :mod:`.dps` the Device Provisioning Service (enrollments, registration over MQTT);
- :mod:`.service` the service REST API (configurations, devices, twins, queries);
- :mod:`.sas` shared access signatures (twin-channel faults: :mod:`sim.cloud.twin_faults`);
  :mod:`.certs` run-time certificates; :mod:`.server` :class:`LocalIoTHub`, the runner;
  :mod:`.cli` ``python -m sim hub``.

The registry, twins and configuration evaluator are :class:`sim.cloud.hub.Hub`'s, shared
with the in-process path.
"""

from sim.cloud.iothub.dps import Enrollment
from sim.cloud.iothub.server import LocalIoTHub, free_loopback_address
from sim.cloud.twin_faults import TwinFault, TwinFaults

__all__ = ["Enrollment", "LocalIoTHub", "TwinFault", "TwinFaults", "free_loopback_address"]
