"""The one aiohttp server of every fobs daemon: bind, basic auth, /healthz, a clean stop.

A component serves /varz, /healthz and /metrics, the collector its status API, the supervisor
its status page; each used to build the same aiohttp app, runner and site by hand. Here that
is written once, with the settings they all want: no access log (counters belong in varz, not
in a log line per scrape), no signal handling (the daemon's own loop owns SIGTERM) and a short
shutdown so a stop is never held up by a keep-alive connection. A failed bind leaves nothing
half-open behind it; the caller says which config key was wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from fobs.components import auth

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]                 # (method, path, handler)
Health = Callable[[], Awaitable[list[str]]]      # reasons for being unhealthy, [] when healthy
SHUTDOWN_TIMEOUT = 1.0


class Server:
    """A started server; `host` and `port` are what was bound (port 0 becomes a real one)."""

    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner
        self.host, self.port = runner.addresses[0][:2]

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    async def close(self) -> None:
        await self._runner.cleanup()


def healthz(health: Health) -> Handler:
    """`GET /healthz`: `ok` (200), or one reason per line (503)."""

    async def handle(request: web.Request) -> web.Response:
        reasons = await health()
        if reasons:
            return web.Response(status=503, text="\n".join(reasons) + "\n")
        return web.Response(text="ok")

    return handle


async def serve(host: str, port: int, routes: Iterable[Route], *,
                credentials: tuple[str, str] | None = None, realm: str = "fobs",
                health: Health | None = None,
                middlewares: Iterable[Middleware] = ()) -> Server:
    """Serve `routes` (and /healthz when `health` is given) on host:port.

    With `credentials`, every path asks for HTTP basic auth in `realm`. Raises OSError when the
    address cannot be bound. `middlewares` run first (the supervisor's access policy).
    """
    chain = [*middlewares, *([auth.middleware(*credentials, realm=realm)] if credentials else [])]
    app = web.Application(middlewares=chain)
    if health is not None:
        app.router.add_get("/healthz", healthz(health))
    for method, path, handler in routes:
        if method == "GET":
            app.router.add_get(path, handler)    # and HEAD
        else:
            app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return Server(runner)
