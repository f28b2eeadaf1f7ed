"""App instances as dea_ng kept them: an app's spec, one instance's lifecycle and usage.

`Instance.to_varz` yields dea_ng's `Instance#attributes_and_stats`: the instance attributes
without `services`, `environment` and `droplet_uri` (dea_ng dropped those from varz because they
carry credentials), plus `used_memory_in_bytes`, `used_disk_in_bytes` and `computed_pcpu`.
Every state visited leaves a `state_<state>_timestamp`, as dea_ng's did.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from fobs.components.sim.names import app_name
from fobs.components.sim.rng import base36, guid, hex_id, lognormal
from fobs.components.sim.traffic import DailyCurve

BORN, STARTING, RUNNING, STOPPING, STOPPED = "BORN", "STARTING", "RUNNING", "STOPPING", "STOPPED"
CRASHED, RESUMING, DELETED, EVACUATING = "CRASHED", "RESUMING", "DELETED", "EVACUATING"
STATES = (BORN, STARTING, RUNNING, STOPPING, STOPPED, CRASHED, RESUMING, DELETED, EVACUATING)
# Memory and disk stay reserved in these states (what Cloud Foundry's collector summed too).
RESERVING = frozenset({BORN, STARTING, RUNNING, RESUMING, EVACUATING})
# A process (and so usage) exists in these.
ALIVE = frozenset({STARTING, RUNNING, RESUMING, STOPPING, EVACUATING})
MIB = 1024 * 1024
MEMORY_CHOICES = (128, 256, 256, 512, 512, 1024)


@dataclass(frozen=True)
class AppSpec:
    """What Cloud Controller (here the stager) tells a DEA about an app to run."""

    app_id: str
    name: str
    version: str
    uris: tuple[str, ...]
    mem_mb: int = 256
    disk_mb: int = 1024
    fds: int = 16384
    sha1: str = ""
    stack: str = "cflinuxfs2"
    instances: int = 1

    @classmethod
    def random(cls, rng: random.Random, domain: str, stack: str,
               max_instances: int = 3) -> AppSpec:
        name = app_name(rng)
        return cls(app_id=guid(rng), name=name, version=guid(rng), uris=(f"{name}.{domain}",),
                   mem_mb=rng.choice(MEMORY_CHOICES), disk_mb=1024, sha1=hex_id(rng, 20),
                   stack=stack, instances=rng.randint(1, max(1, max_instances)))

    def start_message(self, index: int) -> dict[str, Any]:
        """The `dea.<uuid>.start` payload for one instance index (dea_ng's field names)."""
        return {"droplet": self.app_id, "name": self.name, "uris": list(self.uris),
                "version": self.version, "sha1": self.sha1, "executableFile": "deprecated",
                "executableUri": f"http://stager.invalid/droplets/{self.app_id}",
                "limits": {"mem": self.mem_mb, "disk": self.disk_mb, "fds": self.fds},
                "cc_partition": "default", "prod": False, "services": [], "env": [],
                "stack": self.stack, "index": index, "instances": self.instances}

    @classmethod
    def from_start_message(cls, msg: dict[str, Any]) -> AppSpec:
        """Parse a start request; raises ValueError/KeyError/TypeError on a malformed one."""
        limits = msg.get("limits") or {}
        uris = msg.get("uris") or []
        if not isinstance(msg["droplet"], str) or not isinstance(uris, list):
            raise ValueError("droplet must be a string and uris a list")
        return cls(app_id=msg["droplet"], name=str(msg.get("name", msg["droplet"])),
                   version=str(msg.get("version", "")), uris=tuple(str(u) for u in uris),
                   mem_mb=int(limits.get("mem", 256)), disk_mb=int(limits.get("disk", 1024)),
                   fds=int(limits.get("fds", 16384)), sha1=str(msg.get("sha1", "")),
                   stack=str(msg.get("stack", "cflinuxfs2")),
                   instances=int(msg.get("instances", 1)))


class Instance:
    """One app instance in a DEA's registry."""

    def __init__(self, app: AppSpec, index: int, rng: random.Random, now: float, *,
                 port: int, job_id: int, state: str = BORN) -> None:
        self.app = app
        self.index = index
        self.instance_id = hex_id(rng)
        self.private_instance_id = hex_id(rng, 32)
        self.port = port
        self.job_id = job_id
        self.handle = base36(rng)
        self.container_ip = f"10.254.{job_id // 64 % 256}.{job_id % 64 * 4 + 1}"
        self.registered = False
        self.state = state
        self.state_timestamp = now
        self.timestamps = {state: now}
        self.crash_factor = lognormal(rng, 1.0, 0.8)    # some apps are flakier than others
        self._mem_target = rng.uniform(0.25, 0.8)
        self._mem_fraction = 0.05
        self._droplet_bytes = int(lognormal(rng, 60, 0.5) * MIB)
        self._cpu_base = lognormal(rng, 0.04, 0.8)
        self._usage_at = now

    def set_state(self, state: str, now: float) -> None:
        self.state = state
        self.state_timestamp = now
        self.timestamps[state] = now

    def usage(self, now: float, daily: DailyCurve, noise: random.Random
              ) -> tuple[int, int, float]:
        """(used memory bytes, used disk bytes, cpu share) now, drifting since the last call.

        `noise` is a stream of its own: scrapes must not shift the main simulation's draws.
        """
        if self.state not in ALIVE:
            return 0, 0, 0.0
        dt = max(0.0, now - self._usage_at)
        self._usage_at = now
        pull = 1.0 - math.exp(-dt / 30.0)
        jitter = noise.gauss(0.0, 0.02) * math.sqrt(min(dt, 60.0) / 60.0)
        self._mem_fraction += (self._mem_target - self._mem_fraction) * pull + jitter
        self._mem_fraction = min(0.99, max(0.02, self._mem_fraction))
        running_since = self.timestamps.get(RUNNING, now)
        disk = self._droplet_bytes + int((now - running_since) / 60.0 * MIB)
        disk = min(disk, int(self.app.disk_mb * MIB * 0.9))
        cpu = self._cpu_base * daily.factor(now) * math.exp(noise.gauss(0.0, 0.3))
        return int(self._mem_fraction * self.app.mem_mb * MIB), disk, round(cpu, 4)

    def route(self, dea_uuid: str, host_ip: str, dea_index: int) -> dict[str, Any]:
        """The `router.register` / `router.unregister` payload."""
        return {"dea": dea_uuid, "app": self.app.app_id, "uris": list(self.app.uris),
                "host": host_ip, "port": self.port, "tags": {"component": f"dea-{dea_index}"},
                "private_instance_id": self.private_instance_id}

    def to_varz(self, now: float, daily: DailyCurve, noise: random.Random) -> dict[str, Any]:
        mem, disk, cpu = self.usage(now, daily, noise)
        app = self.app
        attributes: dict[str, Any] = {
            "executableFile": "deprecated",
            "limits": {"mem": app.mem_mb, "disk": app.disk_mb, "fds": app.fds},
            "cc_partition": "default",
            "console": False,
            "debug": None,
            "instance_index": self.index,
            "application_id": app.app_id,
            "application_version": app.version,
            "application_name": app.name,
            "application_uris": list(app.uris),
            "application_prod": False,
            "droplet_sha1": app.sha1,
            "instance_id": self.instance_id,
            "private_instance_id": self.private_instance_id,
            "state": self.state,
            "state_timestamp": self.state_timestamp,
            "warden_handle": self.handle,
            "instance_host_port": self.port,
            "instance_container_port": self.port,
            "instance_console_host_port": self.port + 1,
            "instance_console_container_port": self.port + 1,
            "warden_job_id": self.job_id,
            "warden_container_path": f"/var/vcap/data/warden/depot/{self.handle}",
            "warden_host_ip": self.container_ip,
            "used_memory_in_bytes": mem,
            "used_disk_in_bytes": disk,
            "computed_pcpu": cpu,
        }
        for state, at in self.timestamps.items():
            attributes[f"state_{state.lower()}_timestamp"] = at
        return attributes
