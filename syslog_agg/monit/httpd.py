"""The status page and control API (aiohttp), monit's `set httpd` in fobs terms.

GET  /                         HTML status page (refreshes itself)
GET  /status                   JSON: the supervisor and every service
GET  /status/{name}            JSON: the supervisor and one service
POST /service/{name}/{action}  start, stop, restart, monitor or unmonitor (202; 303 from a form)

Every request first passes `fobs.components.access` (monit's `allow` plus credentials, and the
Host/Origin checks a browser-reachable control API needs): state changes are POST only and need
the credentials; the pages need them too unless `status_page = "public"`. docs/security.md has
the threat model.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from loguru import logger

from fobs.components import access, server
from fobs.components.config import host_port
from fobs.syslog_agg.monit import render
from fobs.syslog_agg.monit.config import HttpConfig
from fobs.syslog_agg.monit.errors import Stopping, UnknownAction, UnknownService


class Control(Protocol):
    """What the status server needs of the supervisor (and all it may touch)."""

    def status(self) -> dict[str, Any]: ...

    def request(self, name: str, action: str) -> object: ...


async def serve(sup: Control, cfg: HttpConfig) -> server.Server:
    """Bind the status server (port 0 = ephemeral; the URL says which port was taken)."""
    host, port = host_port(cfg.address, "http.address")
    guard = access.Guard(policy(cfg, host))
    routes = _Routes(sup, guard)
    try:
        served = await server.serve(
            host, port, [("GET", "/", routes.page), ("GET", "/status", routes.status),
                         ("GET", "/status/{name}", routes.status),
                         ("POST", "/service/{name}/{action}", routes.control)],
            middlewares=[guard.middleware])
    except OSError as e:
        raise OSError(e.errno, f"cannot listen on {cfg.address}: {e.strerror}") from None
    if not cfg.user:
        logger.warning("No http.user and http.password: the supervisor at {} refuses every "
                       "state change{}", served.url,
                       "" if cfg.status_page == "public" else " and its status page")
    return served


def policy(cfg: HttpConfig, host: str) -> access.Policy:
    """The access policy of the [http] section (`host` is the listening host)."""
    return access.Policy(
        credentials=(cfg.user, cfg.password) if cfg.user else None,
        allow=access.networks(cfg.allow, "http.allow"),
        hosts=tuple(h.lower() for h in cfg.allowed_hosts), bind_host=host,
        public_reads=cfg.status_page == "public", realm="fobs monit",
        unconfigured="no credentials configured (http.user and http.password): the "
                     "supervisor refuses state changes"
                     + ("" if cfg.status_page == "public" else " and its status page"))


class _Routes:
    def __init__(self, sup: Control, guard: access.Guard) -> None:
        self.sup = sup
        self.guard = guard

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=render.page(self.sup.status()), content_type="text/html")

    async def status(self, request: web.Request) -> web.Response:
        status = self.sup.status()
        status["supervisor"]["http_refused"] = dict(self.guard.refused)
        name = request.match_info.get("name")
        if name is not None:
            status["services"] = [s for s in status["services"] if s["name"] == name]
            if not status["services"]:
                return web.json_response({"error": f"no service named {name!r}"}, status=404)
        return web.json_response(status)

    async def control(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        try:
            self.sup.request(name, action)
        except UnknownService:
            return web.json_response({"error": f"no service named {name!r}"}, status=404)
        except UnknownAction as e:
            return web.json_response({"error": str(e)}, status=400)
        except Stopping as e:
            return web.json_response({"error": str(e)}, status=503)
        if "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther("/")  # a button on the status page
        return web.json_response({"service": name, "action": action, "accepted": True},
                                 status=202)
