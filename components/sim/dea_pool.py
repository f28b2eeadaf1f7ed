"""The DEAs a stager can place app instances on, from their `dea.advertise` messages.

Placement follows Cloud Controller's DEA pool: only DEAs heard from within the TTL, with the
app's stack and room for the instance; among those, fewest instances of this app first, then
most free memory (a random one of the top five). Room taken by a placement is deducted from the
advert until the DEA's next one, so a burst of placements does not overfill a DEA. Stagers on
one connection share one pool (see Feed), which also keeps them from overfilling it together.
"""

from __future__ import annotations

import math
import random
from typing import Any

from fobs.components.sim.clock import Clock
from fobs.components.sim.fanout import Handler
from fobs.components.sim.feed import Feed
from fobs.components.sim.instance import AppSpec

TOP_CHOICES = 5


class DeaPool(Feed):
    key = "stager.deas"

    def __init__(self, clock: Clock, ttl: float = 15.0) -> None:
        super().__init__()
        self.clock = clock
        self.ttl = ttl
        self.adverts: dict[str, tuple[float, dict[str, Any]]] = {}   # uuid → (heard at, advert)

    def handlers(self) -> dict[str, Handler]:
        return {"dea.advertise": self.on_advertise, "dea.shutdown": self.on_shutdown}

    def on_advertise(self, payload: dict[str, Any], reply: str) -> None:
        dea_id = payload["id"]
        if not isinstance(dea_id, str) or not isinstance(payload.get("available_memory", 0),
                                                         (int, float)):
            raise ValueError("id must be a string and available_memory a number")
        self.adverts[dea_id] = (self.clock(), payload)

    def on_shutdown(self, payload: dict[str, Any], reply: str) -> None:
        self.adverts.pop(str(payload.get("id")), None)

    def known(self, now: float) -> int:
        return sum(1 for heard, _ in self.adverts.values() if now - heard <= self.ttl)

    def place(self, app: AppSpec, rng: random.Random, now: float) -> list[str]:
        """A DEA uuid per instance index that fits (fewer than asked when room runs out)."""
        room: dict[str, list[Any]] = {}
        for dea_id, (heard, advert) in list(self.adverts.items()):
            if now - heard > self.ttl:
                del self.adverts[dea_id]
            elif app.stack in advert.get("stacks", [app.stack]):
                counts = advert.get("app_id_to_count") or {}
                room[dea_id] = [advert.get("available_memory", 0),
                                advert.get("available_disk", math.inf),
                                counts.get(app.app_id, 0)]
        placements = []
        for _ in range(app.instances):
            fits = [d for d, (mem, disk, _) in room.items()
                    if mem >= app.mem_mb and disk >= app.disk_mb]
            if not fits:
                break
            fewest = min(room[d][2] for d in fits)
            best = sorted((d for d in fits if room[d][2] == fewest), key=lambda d: -room[d][0])
            dea_id = rng.choice(best[:TOP_CHOICES])
            room[dea_id][0] -= app.mem_mb
            room[dea_id][1] -= app.disk_mb
            room[dea_id][2] += 1
            placements.append(dea_id)
        for dea_id in placements:
            advert = self.adverts[dea_id][1]
            advert["available_memory"] = advert.get("available_memory", 0) - app.mem_mb
            if "available_disk" in advert:
                advert["available_disk"] -= app.disk_mb
        return placements
