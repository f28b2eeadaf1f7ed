"""Parser vectors (RFC 5424, RFC 3164 and what is really on the wire) and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fobs.syslog_agg.parser import parse

UTC = UTC
NOW = datetime(2019, 2, 8, 12, 0, tzinfo=UTC)


def ts(*args: int, tz: timezone = UTC) -> datetime:
    # mypy cannot tell that *args (year, month, day, ...) stops before tzinfo
    return datetime(*args, tzinfo=tz)  # type: ignore[arg-type, misc]


# (raw, expected fields); fields not named are not checked
RFC5424: list[tuple[bytes, dict[str, Any]]] = [
    (b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' "
     b"failed for lonvick on /dev/pts/8",
     dict(format="rfc5424", facility=4, severity=2, version=1,
          timestamp=ts(2003, 10, 11, 22, 14, 15, 3000), hostname="mymachine.example.com",
          app_name="su", procid=None, msgid="ID47", structured_data={},
          message="'su root' failed for lonvick on /dev/pts/8")),
    (b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time",
     dict(facility=20, severity=5, procid="8710", msgid=None, message="%% It's time",
          timestamp=ts(2003, 8, 24, 5, 14, 15, 3, tz=timezone(timedelta(hours=-7))))),
    (b'<165>1 2003-10-11T22:14:15.003Z host evntslog - ID47 [exampleSDID@32473 iut="3" '
     b'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
     dict(message=None, structured_data={
         "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
         "examplePriority@32473": {"class": "high"}})),
    # escapes: \" \\ \] are unescaped, any other backslash pair is kept as is
    (b'<1>1 - - - - - [a x="q\\"b\\\\s\\]e\\n"] hi',
     dict(structured_data={"a": {"x": 'q"b\\s]e\\n'}}, message="hi", timestamp=None,
          hostname=None, app_name=None)),
    (b"<0>1 - - - - - -", dict(facility=0, severity=0, message=None)),
    (b"<191>999 - - - - - - x", dict(facility=23, severity=7, version=999, message="x")),
    (b"<1>100 - - - - - - x", dict(version=100)),
    (b"<1>1 - -web1west - - - -", dict(hostname="-web1west")),
    (b"<1>1 - - - - - -  nosd-sp", dict(message=" nosd-sp")),
    (b"<1>1 - - - - - - ", dict(message=None)),
    (b"<1>1 - - - - - [sdid]", dict(structured_data={"sdid": {}})),
    (b'<1>1 - - - - - [a i="3"] [b x="1"]', dict(structured_data={"a": {"i": "3"}},
                                               message='[b x="1"]')),
    (b'<1>1 - - - - - [a i="1"][a j="2" i="3"]', dict(structured_data={"a": {"i": "3", "j": "2"}})),
    (b'<1>1 - - - - - [a v="\xc3\xa9t\xc3\xa9"]', dict(structured_data={"a": {"v": "été"}})),
    (b"<1>1 - - - - - - line1\nline2\n", dict(message="line1\nline2")),
    (b"<1>1 2003-08-24T05:14:15.123456789+02:00 - - - - -",
     dict(timestamp=ts(2003, 8, 24, 5, 14, 15, 123456, tz=timezone(timedelta(hours=2))))),
    (b"<1>1 2016-12-31T23:59:60Z - - - - -", dict(timestamp=ts(2016, 12, 31, 23, 59, 59))),
    (b"<1>1 - - - - - - \xef\xbb\xbf", dict(message=None)),
    (b"<1>1 - - - - - - \xff\xfe", dict(format="rfc5424", message="\\xff\\xfe")),
    (b"<1>1 - " + b"h" * 255 + b" " + b"a" * 48 + b" " + b"p" * 128 + b" " + b"m" * 32 + b" -",
     dict(hostname="h" * 255, app_name="a" * 48, procid="p" * 128, msgid="m" * 32)),
]

# (raw, error substring): RFC 5424 messages that must come back "unparsed"
RFC5424_BAD: list[tuple[bytes, str]] = [
    (b"<192>1 - - - - - -", "PRI"),
    (b"<002>1 - - - - - -", "PRI"),
    (b"<>1 - - - - - -", "PRI"),
    (b"<aaa>1 - - - - - -", "PRI"),
    (b"<1>0 - - - - - -", "VERSION"),
    (b"<1>1000 - - - - - -", "VERSION"),
    (b"<1>1 -   - - - -", "two SPs"),
    (b"<1>1 - - - - -", "STRUCTURED-DATA"),
    (b"<1>1 2003-09-31T22:14:15Z - - - - -", "TIMESTAMP"),
    (b"<1>1 2018-02-29T22:14:15Z - - - - -", "TIMESTAMP"),
    (b"<1>1 2003-08-24T05:99:15Z - - - - -", "TIMESTAMP"),
    (b"<1>1 2003-08-24T05:14:15-24:00 - - - - -", "TIMESTAMP"),
    (b"<1>1 2003-08-24T05:14:15-07:61 - - - - -", "TIMESTAMP"),
    (b"<1>1 2003-08-24t05:14:15z - - - - -", "TIMESTAMP"),
    (b"<1>1 2003-08-24T05:14:15 - - - - -", "TIMESTAMP"),
    (b"<1>1 2003-08-24T05:14:15.1234567890Z - - - - -", "TIMESTAMP"),
    (b"<1>1 - " + b"h" * 256 + b" - - - -", "HOSTNAME longer"),
    (b"<1>1 - - " + b"a" * 49 + b" - - -", "APP-NAME longer"),
    (b"<1>1 - - - " + b"p" * 129 + b" - -", "PROCID longer"),
    (b"<1>1 - - - - " + b"m" * 33 + b" -", "MSGID longer"),
    (b"<1>1 - - - - - [ x]", "STRUCTURED-DATA"),
    (b"<1>1 - - - - - []", "STRUCTURED-DATA"),
    (b"<1>1 - - - - - [=]", "STRUCTURED-DATA"),
    (b'<1>1 - - - - - [a x="a]b"]', "STRUCTURED-DATA"),
    (b'<1>1 - - - - - [a x="a"b"]', "STRUCTURED-DATA"),
    (b'<1>1 - - - - - [a x="1"', "STRUCTURED-DATA"),
    (b'<1>1 - - - - - [a x="1"]x', "SP after STRUCTURED-DATA"),
    (b"<1>1 - - - - - -x", "SP after STRUCTURED-DATA"),
    (b"<1>1 - h\x01 - - - -", "invalid character in HOSTNAME"),
]

RFC3164: list[tuple[bytes, dict[str, Any]]] = [
    (b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
     dict(format="rfc3164", facility=4, severity=2, timestamp=ts(2018, 10, 11, 22, 14, 15),
          hostname="mymachine", app_name="su", procid=None,
          message="'su root' failed for lonvick on /dev/pts/8")),
    (b"<13>Feb  5 17:32:18 10.0.0.99 sshd[4123]: Accepted publickey",
     dict(timestamp=ts(2019, 2, 5, 17, 32, 18), hostname="10.0.0.99", app_name="sshd",
          procid="4123", message="Accepted publickey")),
    (b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
     dict(hostname="10.0.0.99", app_name=None, message="Use the BFG!")),
    # no hostname
    (b"<15> openvpn[2499]: Peer Connection Initiated",
     dict(facility=1, severity=7, hostname=None, app_name="openvpn", procid="2499",
          timestamp=None, message="Peer Connection Initiated")),
    (b"<27>xapi: [error|xenserver]", dict(app_name="xapi", hostname=None,
                                          message="[error|xenserver]")),
    (b"<190>Apr 15 2007 21:28:13: %PIX-6-302014: Teardown TCP connection",
     dict(facility=23, severity=6, timestamp=ts(2007, 4, 15, 21, 28, 13), hostname=None,
          app_name="%PIX-6-302014", message="Teardown TCP connection")),
    # Cisco IOS: sequence number, `*` (clock not synced), colon after the time
    (b"<0>91: *Oct 07 03:10:04: mydevice.com %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd",
     dict(structured_data={"meta": {"sequenceId": "91"}}, timestamp=ts(2018, 10, 7, 3, 10, 4),
          hostname="mydevice.com", app_name="%CRYPTO-4-RECVD_PKT_INV_SPI",
          message="decaps: rec'd")),
    (b"<189>29: .Mar  1 18:48:50.483 UTC: %SYS-5-CONFIG_I: Configured",
     dict(structured_data={"meta": {"sequenceId": "29"}},
          timestamp=ts(2018, 3, 1, 18, 48, 50, 483000), app_name="%SYS-5-CONFIG_I")),
    (b"<13>Mar 7 2008 19:06:53 host app: x", dict(timestamp=ts(2008, 3, 7, 19, 6, 53),
                                                   hostname="host")),
    (b"<13>Apr 15 21:28:13 2007 linksys kernel: x",
     dict(timestamp=ts(2007, 4, 15, 21, 28, 13), hostname="linksys", app_name="kernel")),
    (b"<6>AUG 10 22:18:24 2009  netips: hello",
     dict(timestamp=ts(2009, 8, 10, 22, 18, 24), app_name="netips", message="hello")),
    (b"<13>NOV 10 22:18:24 h a: b", dict(timestamp=ts(2018, 11, 10, 22, 18, 24))),
    (b"<13> Feb  5 17:32:18 h a: b", dict(hostname="h", app_name="a", message="b")),
    (b"<14>2010-08-30T23:00:05Z X4711 sshd[1]: hi",
     dict(timestamp=ts(2010, 8, 30, 23, 0, 5), hostname="X4711", app_name="sshd", procid="1")),
    (b"<14>2006-10-29 02:00:00.156+01:00 host app: x",
     dict(timestamp=ts(2006, 10, 29, 2, 0, 0, 156000, tz=timezone(timedelta(hours=1))))),
    (b"<14>2006-10-29T02:00:00 host app: x", dict(timestamp=ts(2006, 10, 29, 2, 0, 0))),
    (b"<13>Feb  5 17:32:18 0001:BABA:BA00:DAB::BAB0 sshd(pam_unix)[12750]: session opened",
     dict(hostname="0001:BABA:BA00:DAB::BAB0", app_name="sshd(pam_unix)", procid="12750",
          message="session opened")),
    (b"<13>Feb  5 17:32:18 h ctld/snmpd[2499]: x", dict(app_name="ctld/snmpd", procid="2499")),
    (b"<38>Jan 10 20:15:37 Message forwarded from cdaix66: sshd[679960]: Accepted",
     dict(hostname="cdaix66", app_name="sshd", procid="679960", message="Accepted")),
    (b"Feb 18 16:01:59 serverX -- MARK --",
     dict(facility=1, severity=5, hostname="serverX", app_name=None, message="-- MARK --")),
    (b"<13>Feb  5 17:32:18 h " + b"t" * 46 + b"[1]: x", dict(app_name="t" * 46)),
    # Cloud Foundry's forwarder: <pri>rfc3339 ip programname [job=name index=n] msg
    (b'<14>2014-05-01T12:00:00.123456+00:00 10.0.0.1 vcap.dea_next [job=dea_next index=0] {"a":1}',
     dict(timestamp=ts(2014, 5, 1, 12, 0, 0, 123456), hostname="10.0.0.1",
          app_name="vcap.dea_next", structured_data={"cf": {"job": "dea_next", "index": "0"}},
          message='{"a":1}')),
    (b"<14>2014-05-01T12:00:00Z 10.0.0.1 vcap.dea [job=dea index=0]  two SPs",
     dict(message="two SPs")),
    (b"<14>2014-05-01T12:00:00Z 10.0.0.1 vcap.router: [job=router index=3] hi",
     dict(app_name="vcap.router", structured_data={"cf": {"job": "router", "index": "3"}},
          message="hi")),
    # the year: never far in the future of `now` (2019-02-08)
    (b"<13>Oct  7 03:10:04 h a: b", dict(timestamp=ts(2018, 10, 7, 3, 10, 4))),
    (b"<13>Feb  9 03:10:04 h a: b", dict(timestamp=ts(2019, 2, 9, 3, 10, 4))),
    (b"<13>Feb 29 03:10:04 h a: b", dict(timestamp=ts(2016, 2, 29, 3, 10, 4))),
    (b"<13>Feb  5 17:32:18 h a: b\r\n", dict(message="b")),
    (b"<13>Feb  5 17:32:18 h a:", dict(app_name="a", message=None)),
    (b"<13>just text", dict(format="rfc3164", timestamp=None, hostname=None, app_name=None,
                            message="just text")),
]

UNPARSED: list[tuple[bytes, str]] = [
    (b"", "empty"),
    (b"\x00", "empty"),
    (b"\n", "empty"),
    (b"This is a message!", "no PRI"),
    (b"<200>Oct 11 22:14:15 h a: b", "PRI"),
    (b"<013>Oct 11 22:14:15 h a: b", "PRI"),
    (b"<13", "PRI"),
]


def fields(msg: Any, keys: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(msg, k) for k in keys}


@pytest.mark.parametrize("raw,expected", RFC5424 + RFC3164, ids=lambda v: repr(v)[:50])
def test_vectors(raw: bytes, expected: dict[str, Any]) -> None:
    msg = parse(raw, now=NOW)
    assert msg.error is None, msg.error
    assert msg.raw == raw
    assert fields(msg, expected) == expected


@pytest.mark.parametrize("raw,error", RFC5424_BAD + UNPARSED, ids=lambda v: repr(v)[:50])
def test_rejected(raw: bytes, error: str) -> None:
    msg = parse(raw, now=NOW)
    assert msg.format == "unparsed"
    assert msg.raw == raw
    assert msg.error is not None and error in msg.error


def test_year_wraps_forward_at_new_year() -> None:
    now = datetime(2019, 12, 31, 23, 59, tzinfo=UTC)
    assert parse(b"<13>Jan  1 00:00:30 h a: b", now=now).timestamp == ts(2020, 1, 1, 0, 0, 30)
    now = datetime(2020, 1, 1, 0, 1, tzinfo=UTC)
    assert parse(b"<13>Dec 31 23:59:30 h a: b", now=now).timestamp == ts(2019, 12, 31, 23, 59, 30)


def test_zone_less_timestamps_take_nows_zone() -> None:
    cet = timezone(timedelta(hours=1))
    msg = parse(b"<13>Feb  5 17:32:18 h a: b", now=NOW.astimezone(cet))
    assert msg.timestamp == datetime(2019, 2, 5, 17, 32, 18, tzinfo=cet)


# ---------------------------------------------------------------- fuzzing

PRINT = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
NAME = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='= ]"'),
               min_size=1, max_size=10)
VALUE = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
STAMP = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30)),
                                                timezone(timedelta(hours=5, minutes=45))]))


def nil(value: str | None) -> str:
    return "-" if value is None else value


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@settings(max_examples=300, deadline=None)
@given(pri=st.integers(0, 191), stamp=st.none() | STAMP,
       host=st.none() | PRINT.filter(lambda s: s != "-"),
       app=st.none() | PRINT.filter(lambda s: s != "-"),
       procid=st.none() | PRINT.filter(lambda s: s != "-"),
       msgid=st.none() | PRINT.filter(lambda s: s != "-"),
       sd=st.dictionaries(NAME, st.dictionaries(NAME, VALUE, max_size=3), max_size=3),
       message=st.none() | st.text(st.characters(exclude_categories=["Cs"]), min_size=1)
       .filter(lambda s: s.rstrip("\r\n\x00") == s and not s.startswith("\ufeff")))
def test_rfc5424_round_trip(pri: int, stamp: datetime | None, host: str | None,
                            app: str | None, procid: str | None, msgid: str | None,
                            sd: dict[str, dict[str, str]], message: str | None) -> None:
    """Whatever the generator builds from valid fields parses back to the same fields."""
    stamp_text = "-" if stamp is None else stamp.isoformat().replace("+00:00", "Z")
    sd_text = "".join(
        f"[{sid}" + "".join(f' {k}="{escape(v)}"' for k, v in params.items()) + "]"
        for sid, params in sd.items()) or "-"
    line = (f"<{pri}>1 {stamp_text} {nil(host)} {nil(app)} {nil(procid)} {nil(msgid)} "
            f"{sd_text}" + ("" if message is None else f" {message}"))
    msg = parse(line.encode(), now=NOW)
    assert msg.error is None, (line, msg.error)
    assert (msg.facility, msg.severity) == (pri >> 3, pri & 7)
    assert msg.timestamp == stamp
    assert (msg.hostname, msg.app_name, msg.procid, msg.msgid) == (host, app, procid, msgid)
    assert msg.structured_data == sd
    assert msg.message == message


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    msg = parse(data, now=NOW)
    assert msg.raw == data
    assert msg.format in ("rfc5424", "rfc3164", "unparsed")
    assert (msg.format == "unparsed") == (msg.error is not None)
    if msg.error is None:
        assert 0 <= msg.facility <= 23 and 0 <= msg.severity <= 7  # type: ignore[operator]


VALID = [raw for raw, _ in RFC5424 + RFC3164]


@settings(max_examples=800, deadline=None)
@given(base=st.sampled_from(VALID), data=st.data())
def test_mutated_messages_never_raise(base: bytes, data: st.DataObject) -> None:
    """Flip, insert and delete bytes of valid messages: the parser must still answer."""
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        i = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[i] = data.draw(st.sampled_from(b' <>[]"\\=-:0123456789\x00\n\xff\xefTZ'))
        elif op == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and raw:
            del raw[i]
        else:
            del raw[i:]
    msg = parse(bytes(raw), now=NOW)
    assert msg.raw == bytes(raw)
    assert (msg.format == "unparsed") == (msg.error is not None)


@settings(max_examples=200, deadline=None)
@given(base=st.sampled_from([raw for raw, _ in RFC5424]),
       tail=st.text(st.characters(exclude_categories=["Cs"]), max_size=30))
def test_appending_to_msg_keeps_header(base: bytes, tail: str) -> None:
    """Text appended to a message with a MSG changes the MSG only."""
    first = parse(base, now=NOW)
    if first.message is None or tail.rstrip("\r\n\x00") != tail:
        return
    second = parse(base.rstrip(b"\r\n") + tail.encode(), now=NOW)
    assert (second.hostname, second.app_name, second.structured_data, second.timestamp) == \
        (first.hostname, first.app_name, first.structured_data, first.timestamp)
    assert second.message == first.message + tail
