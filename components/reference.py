"""The reference components by name, for the CLI and the fleet runner.

    kind → (class, config class); the class is built as cls(component, config, rng[, clock]),
    `await obj.run()` runs it until cancelled, `await obj.shutdown()` ends it cleanly.

Usage:
    cls, config_cls = COMPONENTS["dea"]
    component = Component(TYPES["dea"], ComponentConfig(index=3, ...))
    dea = create("dea", component, load(config_cls, path))   # before component.start()
    await component.start(); task = asyncio.create_task(dea.run())
    ...; task.cancel(); await dea.shutdown(); await component.stop()
"""

from __future__ import annotations

from typing import Any, Protocol

from fobs.components.dea import Dea, DeaConfig
from fobs.components.router import Router, RouterConfig
from fobs.components.sim.clock import Clock, wall_clock
from fobs.components.sim.rng import seeded_rng
from fobs.components.stager import Stager, StagerConfig

COMPONENTS: dict[str, tuple[type[Any], type[Any]]] = {
    "dea": (Dea, DeaConfig),
    "router": (Router, RouterConfig),
    "stager": (Stager, StagerConfig),
}
# The `type` each registers with (Cloud Foundry's names).
TYPES = {"dea": "DEA", "router": "Router", "stager": "Stager"}


class ReferenceComponent(Protocol):
    async def run(self) -> None: ...
    async def shutdown(self) -> None: ...


def create(kind: str, component: Any, config: Any | None = None,
           clock: Clock = wall_clock) -> ReferenceComponent:
    """Build a reference component on `component` (not yet started: it adds HTTP routes).

    The RNG is seeded from `config.seed`, or derived from the component's type and index.
    """
    cls, config_cls = COMPONENTS[kind]
    config = config if config is not None else config_cls()
    rng = seeded_rng(component.type, component.index, config.seed)
    return cls(component, config, rng, clock)  # type: ignore[no-any-return]
