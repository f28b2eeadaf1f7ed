"""HTTP basic auth for /varz, /healthz and /metrics, and credential generation.

Parsed by hand rather than with aiohttp.BasicAuth, which aiohttp 3.14 deprecates; compared in
constant time over the whole "user:password" pair so timing says nothing about either part.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def generate_secret() -> str:
    """32 hex characters, like Cloud Foundry's VCAP.secure_uuid."""
    return secrets.token_hex(16)


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def check(header: str | None, expected: bytes) -> bool:
    if not header or not header[:6].lower() == "basic ":
        return False
    try:
        given = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)


def middleware(user: str, password: str, realm: str) -> Middleware:
    expected = f"{user}:{password}".encode()
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    @web.middleware
    async def require_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not check(request.headers.get("Authorization"), expected):
            return web.Response(status=401, text="unauthorized\n", headers=challenge)
        return await handler(request)

    return require_auth
