"""Syslog parser: RFC 5424 strictly, RFC 3164 and its real-world variants leniently.

`parse(data, now=...)` never raises. It picks the grammar from the bytes after PRI: a VERSION
(digits then SP) means RFC 5424, anything else is treated as BSD syslog (RFC 3164). Input that
cannot be read as either comes back with format "unparsed", `raw` kept and `error` saying why.

The parser sits on the receive hot path, so the common shapes are matched by one precompiled
regex each and the slower diagnostic code only runs for messages that already failed.

Heuristics (also in docs/syslog.md):
- A trailing LF, CR LF or NUL (framing left-overs) is removed before parsing. Invalid UTF-8
  is read as `lines.decode_raw` renders it (`\\xNN`; binary input byte by byte).
- RFC 5424: up to 9 fraction digits are accepted (nanoseconds, truncated to microseconds; RFC 5424
  allows 6), a leap second `:60` is read as `:59`. A repeated SD-ID is merged and a repeated
  PARAM-NAME keeps its last value. A BOM at the start of MSG is removed. An empty MSG is None.
- RFC 3164: a missing PRI is accepted (as 13, user.notice, like rsyslog) only when the line starts
  with a timestamp; otherwise the input is "unparsed". The year of a `Mmm dd hh:mm:ss` timestamp
  is the latest year (from now's year + 1 down) that does not put the timestamp more than two
  days after `now`; zone-less timestamps take `now`'s zone. A token right after the timestamp is
  the HOSTNAME unless it ends with `:` (a tag); with no timestamp there is no hostname. A tag
  needs a `:` or a `[pid]`, except the Cloud Foundry forwarder form
  `programname [job=… index=…]`, whose bracket is stored as structured data
  `{"cf": {"job": …, "index": …}}`; one or two SPs after it are dropped (rsyslog's `%msg%`
  keeps the SP that followed the original tag). A Cisco sequence number (`91: *Oct …`) is
  stored as `{"meta": {"sequenceId": "91"}}` (IANA `meta`). A 4-digit number after the time
  (`Apr 15 21:28:13 2007 host`) is taken as the year, not the host.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

from fobs.syslog_agg.lines import decode_invalid
from fobs.syslog_agg.message import SyslogMessage

__all__ = ["parse", "DEFAULT_PRI"]

DEFAULT_PRI = 13  # user.notice, what a relay assumes for a message without PRI (RFC 3164 4.3.3)

_FUTURE_TOLERANCE = timedelta(days=2)

# ---------------------------------------------------------------- RFC 5424
_PRI = re.compile(r"<(\d{1,3})>")
_V5424 = re.compile(r"<(\d{1,3})>(\d+) ")
# PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP (then STRUCTURED-DATA)
_HEADER = re.compile(
    r"<(0|[1-9]\d{0,2})>([1-9]\d{0,2}) "
    r"(-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) "
    r"([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) ")
_TS5424 = re.compile(
    r"\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d{1,9})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)\Z")
# SD-ELEMENT start and one SD-PARAM; SD-NAME is PRINTUSASCII except = SP ] "
_SD_ID = re.compile(r'\[([!#-<>-\\^-~]{1,32})')
_SD_PARAM = re.compile(r' ([!#-<>-\\^-~]{1,32})="([^"\\\]]*(?:\\.[^"\\\]]*)*)"', re.S)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')

# ---------------------------------------------------------------- RFC 3164
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_MONTHS_TITLE = {m.title(): i for m, i in _MONTHS.items()}
# optional Cisco sequence number, optional `*`/`.` (clock not in sync), then one of the timestamps
_SEQ = re.compile(r"(\d{1,10}): ")
_BSD_TS = re.compile(
    r"[*.]?([A-Za-z]{3}) {1,2}(\d{1,2})(?: (\d{4}))? (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
    r"(?: (\d{4})(?= ))?(?: (?:UTC|GMT))?:?(?: +|\Z)")
_ISO_TS = re.compile(
    r"[*.]?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?)"
    r"(Z|[+-]\d\d:?\d\d)?:?(?: +|\Z)")
# the common BSD shapes in one match: <PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG, and the Cloud
# Foundry forwarder's <PRI>Mmm dd hh:mm:ss HOST PROGRAM [job=J index=I]  MSG (as _CF_SD reads it)
_BSD_FAST = re.compile(
    r"<(0|[1-9]\d{0,2})>([A-Z][a-z]{2}) ([ 1-3]\d) ([0-2]\d):([0-5]\d):([0-5]\d) "
    r"([^\s\[\]:]+) ([^\s\[\]:]{1,48})(?:(?:\[(\d{1,10})\])?: "
    r"| \[job=([^\s\]]*) index=([^\s\]]*)\](?:  ?|\Z))")
_HOST = re.compile(r"([^\s\[\]]+) +")
_TAG = re.compile(r"([^\s\[\]:]{1,48})(?:\[([^\]\s]{0,128})\])?(:?)(?: |\Z)")
_AIX = re.compile(r"Message forwarded from ([^\s:]+): ")
# rsyslog's %msg% keeps the SP that followed the tag, so the forwarder's line may have two
_CF_SD = re.compile(r"\[job=([^\s\]]*) index=([^\s\]]*)\](?:  ?|\Z)")


def parse(data: bytes, *, now: datetime) -> SyslogMessage:
    """Parse one syslog message; never raises.

    `now` (timezone-aware) is the reception time: it supplies the missing year and zone of
    RFC 3164 timestamps.
    """
    try:
        return _parse(data, now)
    except Exception as e:  # a parser bug must not cost a message: keep it raw with the reason
        return SyslogMessage(raw=data, format="unparsed", error=f"parser error: {e!r}")


def _parse(data: bytes, now: datetime) -> SyslogMessage:
    end = len(data)
    while end and data[end - 1] in b"\n\r\x00":
        end -= 1
    body = data[:end] if end != len(data) else data
    if not body:
        return SyslogMessage(raw=data, format="unparsed", error="empty message")
    try:
        text = body.decode()
    except UnicodeDecodeError:  # \xNN for invalid bytes, at a bounded cost (lines.decode_raw)
        text = decode_invalid(body)
    m = _HEADER.match(text)
    if m is not None:
        msg = _rfc5424(data, text, m)
        if msg is not None:
            return msg
    b = _BSD_FAST.match(text)
    if b is not None:
        msg = _rfc3164_fast(data, text, b, now)
        if msg is not None:
            return msg
    if text[0] == "<":
        v = _V5424.match(text)
        if v is not None:
            return SyslogMessage(raw=data, format="unparsed", error=_diagnose5424(text, v))
        p = _PRI.match(text)
        if p is None:
            return SyslogMessage(raw=data, format="unparsed", error="invalid PRI")
        pri_text = p.group(1)
        pri = int(pri_text)
        if pri > 191 or (len(pri_text) > 1 and pri_text[0] == "0"):
            return SyslogMessage(raw=data, format="unparsed", error=f"invalid PRI <{pri_text}>")
        return _rfc3164(data, text, p.end(), pri, now)
    return _rfc3164(data, text, 0, -1, now)


def _rfc5424(data: bytes, text: str, m: re.Match[str]) -> SyslogMessage | None:
    """Finish a message whose header matched; None when it is not valid RFC 5424 after all."""
    pri_s, ver, ts, host, app, procid, msgid = m.groups()
    pri = int(pri_s)
    if pri > 191:
        return None
    if ts == "-":
        timestamp = None
    else:
        try:
            timestamp = datetime.fromisoformat(ts)
        except ValueError:  # calendar (2003-09-31), hour 24, or a leap second
            timestamp = _ts5424(ts)
            if timestamp is None:
                return None
        if ts[-2] > "5" and ts[-1] != "Z":  # offset minutes over 59 (fromisoformat allows them)
            return None
    pos = m.end()
    sd: dict[str, dict[str, str]] = {}
    if text.startswith("-", pos):
        pos += 1
    else:
        pos = _structured_data(text, pos, sd)
        if pos < 0:
            return None
    if pos == len(text):
        message = None
    elif text[pos] == " ":
        message = text[pos + 1:]
        if message.startswith("\ufeff"):
            message = message[1:]
        if not message:
            message = None
    else:
        return None
    # positional in SyslogMessage's field order: keywords cost 0.3 µs a message here
    return SyslogMessage(
        data, "rfc5424", pri >> 3, pri & 7, timestamp,
        None if host == "-" else host, None if app == "-" else app,
        None if procid == "-" else procid, None if msgid == "-" else msgid,
        sd, message, None, False, 1 if ver == "1" else int(ver))


def _ts5424(ts: str) -> datetime | None:
    if _TS5424.match(ts) is None:
        return None
    if ts[17:19] == "60":  # leap second: RFC 3339 allows it, datetime does not
        ts = ts[:17] + "59" + ts[19:]
    try:
        return datetime.fromisoformat(ts)
    except ValueError:  # calendar: 2003-09-31, 2018-02-29
        return None


def _structured_data(text: str, pos: int, sd: dict[str, dict[str, str]]) -> int:
    """Parse SD-ELEMENTs from `pos` into `sd`; return the position after them, or -1."""
    n = len(text)
    while pos < n and text[pos] == "[":
        m = _SD_ID.match(text, pos)
        if m is None:
            return -1
        params = sd.setdefault(m.group(1), {})
        pos = m.end()
        while True:
            p = _SD_PARAM.match(text, pos)
            if p is None:
                break
            value = p.group(2)
            if "\\" in value:
                value = _SD_UNESCAPE.sub(r"\1", value)
            params[p.group(1)] = value
            pos = p.end()
        if not text.startswith("]", pos):
            return -1
        pos += 1
    return pos


def _diagnose5424(text: str, v: re.Match[str]) -> str:
    """Say why a message with a VERSION did not parse (slow path, failures only)."""
    pri_s, ver = v.groups()
    if int(pri_s) > 191 or (len(pri_s) > 1 and pri_s[0] == "0"):
        return f"invalid PRI <{pri_s}>"
    if ver[0] == "0" or len(ver) > 3:
        return f"invalid VERSION {ver!r}"
    names = ("TIMESTAMP", "HOSTNAME", "APP-NAME", "PROCID", "MSGID")
    limits = (None, 255, 48, 128, 32)
    pos = v.end()
    for name, limit in zip(names, limits, strict=True):
        sp = text.find(" ", pos)
        if sp < 0:
            if pos >= len(text):
                return f"missing {name}"
            return "missing STRUCTURED-DATA" if name == "MSGID" else f"missing SP after {name}"
        field = text[pos:sp]
        if not field:
            return f"empty {name} (two SPs in a row)"
        if not field.isascii() or not field.isprintable():
            return f"invalid character in {name}"
        if limit is not None and len(field) > limit:
            return f"{name} longer than {limit} characters"
        if name == "TIMESTAMP" and field != "-" and _ts5424(field) is None:
            return f"invalid TIMESTAMP {field!r}"
        pos = sp + 1
    if pos >= len(text):
        return "missing STRUCTURED-DATA"
    if text[pos] == "-":
        end = pos + 1
    elif text[pos] == "[":
        end = _structured_data(text, pos, {})
        if end < 0:
            return "invalid STRUCTURED-DATA"
    else:
        return "invalid STRUCTURED-DATA"
    return "missing SP after STRUCTURED-DATA" if end < len(text) else "invalid message"


def _rfc3164(data: bytes, text: str, pos: int, pri: int, now: datetime) -> SyslogMessage:
    """BSD syslog, leniently; `pri` is -1 when the message had none."""
    n = len(text)
    while pos < n and text[pos] == " ":
        pos += 1
    sd: dict[str, dict[str, str]] = {}
    seq = _SEQ.match(text, pos)
    if seq is not None:
        sd["meta"] = {"sequenceId": seq.group(1)}
        pos = seq.end()
    timestamp = None
    m = _BSD_TS.match(text, pos)
    if m is not None:
        timestamp = _bsd_timestamp(m, now)
        if timestamp is not None:
            pos = m.end()
    if timestamp is None:
        m = _ISO_TS.match(text, pos)
        if m is not None:
            timestamp = _iso_timestamp(m, now.tzinfo)
            if timestamp is not None:
                pos = m.end()
    if pri < 0:
        if timestamp is None:
            return SyslogMessage(raw=data, format="unparsed", error="no PRI and no timestamp")
        pri = DEFAULT_PRI
    hostname = app = procid = None
    if timestamp is not None:
        aix = _AIX.match(text, pos)
        if aix is not None:
            hostname = aix.group(1)
            pos = aix.end()
        else:
            h = _HOST.match(text, pos)
            if h is not None:
                host = h.group(1)
                if not host.endswith(":"):  # `tag:` right after the time: no hostname
                    hostname = host
                    pos = h.end()
    t = _TAG.match(text, pos)
    if t is not None:
        name, pid, colon = t.groups()
        after = t.end()
        cf = _CF_SD.match(text, after) if not colon or after < n else None
        if colon or pid is not None or cf is not None:
            app = name
            procid = pid or None
            pos = after
            if cf is not None:
                sd["cf"] = {"job": cf.group(1), "index": cf.group(2)}
                pos = cf.end()
    message = text[pos:] or None
    return SyslogMessage(
        raw=data, format="rfc3164", facility=pri >> 3, severity=pri & 7, timestamp=timestamp,
        hostname=hostname, app_name=app, procid=procid, structured_data=sd, message=message)


def _rfc3164_fast(data: bytes, text: str, m: re.Match[str], now: datetime
                  ) -> SyslogMessage | None:
    pri_s, mon, day, hh, mm, ss, host, app, procid, job, index = m.groups()
    pri = int(pri_s)
    month = _MONTHS_TITLE.get(mon)
    if pri > 191 or month is None or (month == 1 and now.month == 12):
        return None  # the general path handles these (and the year wrap)
    try:
        ts = datetime(now.year, month, int(day), int(hh), int(mm), int(ss), 0, now.tzinfo)
    except ValueError:  # Feb 29, hour 24
        return None
    if ts > now + _FUTURE_TOLERANCE:
        try:
            ts = ts.replace(year=now.year - 1)
        except ValueError:
            return None
    return SyslogMessage(
        data, "rfc3164", pri >> 3, pri & 7, ts, host, app, procid, None,
        {} if job is None else {"cf": {"job": job, "index": index}}, text[m.end():] or None)


def _bsd_timestamp(m: re.Match[str], now: datetime) -> datetime | None:
    mon_s, day_s, year1, hh, mm, ss, frac, year2 = m.groups()
    month = _MONTHS.get(mon_s.lower())
    if month is None:
        return None
    day, hour, minute, second = int(day_s), int(hh), int(mm), int(ss)
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    tz = now.tzinfo
    year_s = year1 or year2
    try:
        if year_s:
            return datetime(int(year_s), month, day, hour, minute, min(second, 59), micro, tz)
        limit = now + _FUTURE_TOLERANCE
        for year in range(now.year + 1, now.year - 8, -1):  # Feb 29: the last leap year
            try:
                ts = datetime(year, month, day, hour, minute, min(second, 59), micro, tz)
            except ValueError:  # Feb 29 in a non-leap year
                continue
            if ts <= limit:
                return ts
    except (ValueError, TypeError):
        return None
    return None


def _iso_timestamp(m: re.Match[str], tz: tzinfo | None) -> datetime | None:
    stamp, offset = m.groups()
    stamp = stamp.replace(",", ".")
    if offset and offset != "Z" and ":" not in offset:
        offset = offset[:3] + ":" + offset[3:]
    try:
        ts = datetime.fromisoformat(stamp + (offset or ""))
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=tz)
    return ts

