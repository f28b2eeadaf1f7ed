"""Cloud Foundry's component wire protocol (`VCAP::Component`), both sides of it, in one place.

A component publishes its discover payload `{type, index, uuid, host, credentials, start}` on
`vcap.component.announce` at start (fobs also after every NATS reconnect), answers each
`vcap.component.discover` request with the same plus `uptime`, and fobs components say goodbye
with `{type, index, uuid, host}` on `vcap.component.unregister`. The runtime builds these
payloads here and the collector's discovery parses them here, so the two cannot drift apart.

Parsing accepts what real Cloud Foundry components sent: Ruby and Go forms, `start` as
"YYYY-MM-DD HH:MM:SS +0000" (or any "±HHMM" offset), `index` as an integer or a numeric string,
`credentials` as a two-element list, `uptime` as "Nd:Nh:Nm:Ns". A payload without `index` is
ignored, as the original collector did; anything else unusable raises `PayloadError`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fobs.components.errors import PayloadError as PayloadError  # raised here, caught by discovery

ANNOUNCE = "vcap.component.announce"
DISCOVER = "vcap.component.discover"
UNREGISTER = "vcap.component.unregister"
START_FORMAT = "%Y-%m-%d %H:%M:%S %z"
MAX_PAYLOAD = 64 * 1024

_UPTIME = re.compile(r"(\d{1,6})d:(\d{1,2})h:(\d{1,2})m:(\d{1,2})s")
_HOST = re.compile(r"(?:\[(?P<ip6>[0-9A-Fa-f:.]{2,45})\]|[A-Za-z0-9][A-Za-z0-9_.-]{0,252})"
                   r":(?P<port>[0-9]{1,5})", re.ASCII)
TYPE_PATTERN = r"[A-Za-z][A-Za-z0-9_.-]{0,63}"
_TYPE = re.compile(TYPE_PATTERN, re.ASCII)


@dataclass(frozen=True, slots=True)
class Announcement:
    """One component as its announce or discover reply describes it."""

    type: str
    index: int
    uuid: str
    host: str                                  # "ip:port" of its /varz server
    credentials: tuple[str, str] | None = None
    start: datetime | None = None


# -- formats ---------------------------------------------------------------------------------

def format_start(start: datetime) -> str:
    """`start` as Cloud Foundry wrote it: "2013-07-02 17:28:03 +0000"."""
    return start.strftime(START_FORMAT)


def parse_start(value: Any) -> datetime | None:
    """Cloud Foundry's "2013-07-02 17:28:03 +0000" (Ruby) / "-0700" (Go); None if unusable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), START_FORMAT)
    except ValueError:
        return None


def uptime_string(seconds: float) -> str:
    """Cloud Foundry's `Nd:Nh:Nm:Ns`."""
    s = int(seconds)
    return f"{s // 86400}d:{s % 86400 // 3600}h:{s % 3600 // 60}m:{s % 60}s"


def parse_uptime(value: str) -> int | None:
    """Seconds from `Nd:Nh:Nm:Ns` (Ruby and Go components); None if it is not that."""
    match = _UPTIME.fullmatch(value.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = (int(part) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


# -- building (the component side) -----------------------------------------------------------

def identity(type: str, index: int, uuid: str, host: str) -> dict[str, Any]:
    """The unregister payload, and the head of every other one."""
    return {"type": type, "index": index, "uuid": uuid, "host": host}


def discover_payload(type: str, index: int, uuid: str, host: str,
                     credentials: tuple[str, str], start: datetime,
                     uptime: float | None = None) -> dict[str, Any]:
    """The announce payload; with `uptime` (seconds), the discover reply."""
    payload = {**identity(type, index, uuid, host), "credentials": list(credentials),
               "start": format_start(start)}
    if uptime is not None:
        payload["uptime"] = uptime_string(uptime)
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


# -- parsing (the collector side) ------------------------------------------------------------

def decode(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(data)} bytes is too large")
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise PayloadError(f"not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise PayloadError("not a JSON object")
    return payload


def parse_index(value: Any) -> int:
    if isinstance(value, bool):
        raise PayloadError("index is a boolean")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        index = int(value.strip())
    else:
        raise PayloadError(f"index {value!r} is not an integer")
    if index < 0:
        raise PayloadError(f"index {index} is negative")
    return index


def parse_credentials(value: Any) -> tuple[str, str] | None:
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, str) for v in value)):
        return (value[0], value[1])
    return None


def parse_host(value: Any) -> str:
    """`host:port` of a varz server, nothing else: a name or IPv4 address, or an IPv6 one in
    brackets, and a port 1..65535. No path, query, fragment or userinfo: the collector builds
    `http://<host>/varz` from it, so anything more would let an announce choose the URL."""
    text = value.strip() if isinstance(value, str) else None
    match = _HOST.fullmatch(text) if text is not None and len(text) <= 300 else None
    if text is None or match is None or not 0 < int(match["port"]) < 65536:
        raise PayloadError(f"host {value!r} is not HOST:PORT")
    if match["ip6"] is not None:
        try:
            ipaddress.IPv6Address(match["ip6"])
        except ValueError:
            raise PayloadError(f"host {value!r} is not HOST:PORT") from None
    return text


def parse_type(value: Any) -> str:
    """A component type: a letter, then letters, digits, `_`, `.`, `-`; 64 characters at most
    (every Cloud Foundry and fobs type fits; it becomes a tag, a log word and a status column)."""
    if not isinstance(value, str) or _TYPE.fullmatch(value) is None:
        raise PayloadError(f"type {value!r} is not a component type")
    return value


def parse_announcement(data: bytes) -> Announcement | None:
    """An announce or discover reply; None when it has no index (ignored, as CF did)."""
    payload = decode(data)
    if payload.get("index") is None:
        return None
    ctype = parse_type(payload.get("type"))
    index = parse_index(payload["index"])
    host = parse_host(payload.get("host"))
    uuid = payload.get("uuid")
    if isinstance(uuid, str) and not uuid.isprintable():
        raise PayloadError(f"uuid {uuid!r} has control characters")
    if not isinstance(uuid, str) or not uuid or len(uuid) > 200:
        uuid = f"{ctype}/{index}"     # CF components always send one; be lenient otherwise
    return Announcement(type=ctype, index=index, uuid=uuid, host=host,
                        credentials=parse_credentials(payload.get("credentials")),
                        start=parse_start(payload.get("start")))


def parse_unregister(data: bytes) -> str:
    """The uuid of a `vcap.component.unregister` message."""
    uuid = decode(data).get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise PayloadError("unregister without uuid")
    return uuid
