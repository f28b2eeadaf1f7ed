"""Who may use a daemon's HTTP API: client networks, Host, Origin, method, credentials.

Basic auth alone does not protect a control API on loopback: a web page in the operator's
browser can send a cross-origin form POST to 127.0.0.1 (and the browser may attach the basic
auth it has cached for that address), and DNS rebinding lets a page on evil.example reach
127.0.0.1 under its own name, as a same-origin request. So, in this order, a request is refused
unless:

1. the client address is in an allowed network (monit's `allow`)                      → 403
2. the `Host` header names this server: the address the connection reached, a loopback
   form (`localhost`, `127.0.0.1`, `[::1]`) or the configured listening host, each with the
   bound port; or a configured extra name (DNS rebinding needs a name of the attacker's)   → 403
3. an `Origin` header, when present, is this server's own origin, and `Sec-Fetch-Site`,
   when present, is not cross-site (a cross-origin form or fetch from a browser)           → 403
4. the route exists and takes the method: state changes are POST-only routes            → 404/405
5. the request carries the credentials (constant-time compare), unless it only reads and
   reads are public; with no credentials configured nothing but public reads is allowed   → 401/403

Every answer carries `X-Frame-Options: DENY` (the page's buttons cannot be clickjacked) and
`nosniff`. Refusals are counted by reason in `Guard.refused`.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from fobs.components import auth

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOOPBACK = ("127.0.0.0/8", "::1/128")
WILDCARDS = ("", "0.0.0.0", "::")
READS = frozenset({"GET", "HEAD"})
DEFAULT_PORTS = {"http": 80, "https": 443}
HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def networks(values: Iterable[str], key: str = "allow") -> tuple[Network, ...]:
    """Parse networks (`10.0.0.0/8`, `::1`, a bare address = one host); ValueError names the key."""
    parsed = []
    for i, value in enumerate(values):
        try:
            parsed.append(ipaddress.ip_network(value))
        except ValueError as e:
            raise ValueError(f"{key}[{i}]: {e}") from None
    return tuple(parsed)


def split_host(value: str) -> tuple[str, int | None] | None:
    """(host, port or None) of a `Host` header or `HOST[:PORT]`, lower case; None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
        if ":" in port:  # an IPv6 address without brackets
            return None
    host = host.rstrip(".")
    if not host or any(c in host for c in "/@?#\\ ") or (port and not port.isdigit()):
        return None
    if port and int(port) > 65535:
        return None
    return host, int(port) if port else None


def _plain(ip: str) -> str:
    """An address as clients write it: `::ffff:127.0.0.1` (a dual-stack socket) → `127.0.0.1`."""
    try:
        addr = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return ip.lower()
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


@dataclass(frozen=True)
class Policy:
    """What `Guard` enforces; see the module docstring for the order of the checks.

    `hosts` are extra `Host` names: `name` (any port) or `name:port`, lower case.
    `unconfigured` is the refusal text when no credentials are configured (name the config keys).
    """

    credentials: tuple[str, str] | None = None
    allow: tuple[Network, ...] = networks(LOOPBACK)
    hosts: tuple[str, ...] = ()
    bind_host: str = ""
    public_reads: bool = False
    realm: str = "fobs"
    unconfigured: str = "no credentials are configured: only public reads are served"


class Guard:
    """The policy as an aiohttp middleware, with its refusals counted by reason."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.refused: Counter[str] = Counter()
        self._expected = ":".join(policy.credentials).encode() if policy.credentials else None
        self._hosts = [h for h in map(split_host, policy.hosts) if h is not None]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self.refusal(request)
        if refusal is not None:
            response: web.StreamResponse = refusal
        else:
            try:
                response = await handler(request)
            except web.HTTPException as e:  # 303 from a form, the router's 404/405
                e.headers.update(HEADERS)
                raise
        response.headers.update(HEADERS)
        return response

    def refusal(self, request: web.Request) -> web.Response | None:
        """The answer refusing `request`, or None when it may go on to its handler."""
        if not self._client_allowed(request.remote):
            return self._refuse("client", 403, f"client address {request.remote} is not allowed")
        host = split_host(request.headers.get("Host", ""))
        if host is None or not self._host_allowed(request, host):
            return self._refuse("host", 403, "unknown Host header (DNS rebinding?): "
                                f"{request.headers.get('Host', '')!r}")
        if not self._same_origin(request, host):
            return self._refuse("origin", 403, "cross-origin request refused: Origin "
                                f"{request.headers.get('Origin', '')!r}")
        routing = request.match_info.http_exception
        if routing is not None:  # unknown path (404), or a GET of a POST-only route (405)
            return None
        if request.method in READS and self.policy.public_reads:
            return None
        if self._expected is None:
            return self._refuse("unconfigured", 403, self.policy.unconfigured)
        if not auth.check(request.headers.get("Authorization"), self._expected):
            return self._refuse("credentials", 401, "wrong or missing credentials",
                                {"WWW-Authenticate": f'Basic realm="{self.policy.realm}"'})
        return None

    def _refuse(self, reason: str, status: int, text: str,
                headers: dict[str, str] | None = None) -> web.Response:
        self.refused[reason] += 1
        return web.json_response({"error": text}, status=status, headers=headers)

    def _client_allowed(self, remote: str | None) -> bool:
        if remote is None:
            return False
        try:
            ip = ipaddress.ip_address(_plain(remote))
        except ValueError:
            return False
        return any(ip in net for net in self.policy.allow)

    def _host_allowed(self, request: web.Request, host: tuple[str, int | None]) -> bool:
        name, port = host
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if not sockname:
            return False
        local_ip, local_port = _plain(str(sockname[0])), int(sockname[1])
        ours = {"localhost", local_ip}
        if self.policy.bind_host not in WILDCARDS:
            ours.add(_plain(self.policy.bind_host))
        if (name in ours or _loopback(name)) and (port or 80) == local_port:
            return True
        return any(name == n and (p is None or p == (port or 80)) for n, p in self._hosts)

    def _same_origin(self, request: web.Request, host: tuple[str, int | None]) -> bool:
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = request.headers.get("Origin")
        if origin is None:  # not from a browser's cross-origin request (the CLI, curl)
            return True
        parts = urlsplit(origin)
        if parts.scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.username:
            return False  # "null" (a sandboxed page, a file), or not an origin at all
        theirs = split_host(parts.netloc)
        default = DEFAULT_PORTS[parts.scheme]
        return theirs is not None and (theirs[0], theirs[1] or default) == \
            (host[0], host[1] or default)


def _loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
