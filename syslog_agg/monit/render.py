"""Status as text in the layout of monit's own `summary`, `status` and `report`, and as HTML.

Everything here works from the JSON of `Supervisor.status()`, so the CLI can render what a
running supervisor sends over HTTP, and the status page renders the same thing locally.
"""

from __future__ import annotations

import html
import time
from typing import Any

KEY_WIDTH = 29
NAME_WIDTH = 33
STATUS_WIDTH = 28
OK_STATES = ("OK",)


def uptime(seconds: float | None) -> str:
    """monit's uptime: "0m", "1h 5m", "2d 3h 4m"."""
    if seconds is None:
        return "-"
    minutes = int(seconds) // 60
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = ([f"{days}d"] if days else []) + ([f"{hours}h"] if days or hours else [])
    return " ".join(parts + [f"{minutes}m"])


def _cut(text: str, width: int) -> str:
    return text if len(text) < width else text[:width - 4] + "..."


def size(n: int | float | None) -> str:
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} GB"


def header(status: dict[str, Any]) -> str:
    sup = status["supervisor"]
    return f"{sup['version']} uptime: {uptime(sup['uptime'])}"


def summary(status: dict[str, Any]) -> str:
    lines = [header(status),
             " " + "Service Name".ljust(NAME_WIDTH) + "Status".ljust(STATUS_WIDTH) + "Type"]
    for svc in status["services"]:
        lines.append(" " + _cut(svc["name"], NAME_WIDTH).ljust(NAME_WIDTH)
                     + _cut(svc["status"], STATUS_WIDTH).ljust(STATUS_WIDTH) + svc["type"])
    return "\n".join(lines) + "\n"


def _line(key: str, value: Any) -> str:
    return "  " + key.ljust(KEY_WIDTH) + str(value)


def _percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0.0%"


def _collected(ts: float | None) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S", time.localtime(ts)) if ts else "-"


def _check_lines(svc: dict[str, Any]) -> list[str]:
    lines = []
    for check in svc["checks"]:
        kind = check["kind"]
        if kind in ("tcp", "udp", "http") and check["ok"] is not None:
            target = check["check"].split(" ", 1)[1]
            proto = {"tcp": "TCP/IP", "udp": "UDP/IP", "http": "HTTP"}[kind]
            took = check["response_time"]
            value = "FAILED" if not check["ok"] else (
                f"{took:.3f} s" if took is not None else "OK")
            lines.append(_line("port response time", f"{value} to {target} type {proto}"))
        elif kind == "program" and check["ok"] is not None:
            code = check.get("exit_status")
            lines.append(_line("last exit value", code if code is not None else check["message"]))
            output = (check.get("output") or "").strip().splitlines()
            lines.append(_line("last output", output[-1][:120] if output else "-"))
    return lines


def service(svc: dict[str, Any], host_memory: int) -> str:
    lines = [f"{svc['type']} '{svc['name']}'",
             _line("status", svc["status"]),
             _line("monitoring status", svc["monitoring_status"]),
             _line("monitoring mode", "active"),
             _line("on reboot", "start")]
    if svc["type"] == "Process":
        running = svc["pid"] is not None
        lines.append(_line("pid", svc["pid"] if running else "-"))
        if running:
            cpu = svc["cpu"]
            cpu_total = svc["cpu_total"]
            lines += [
                _line("parent pid", svc["ppid"] if svc["ppid"] is not None else "-"),
                _line("uptime", uptime(svc["uptime"])),
                _line("threads", svc["threads"]),
                _line("children", svc["children"]),
                _line("cpu", f"{cpu:.1f}%" if cpu is not None else "-"),
                _line("cpu total", f"{cpu_total:.1f}%" if cpu_total is not None else "-"),
                _line("memory", f"{_percent(svc['memory'], host_memory)} [{size(svc['memory'])}]"),
                _line("memory total", f"{_percent(svc['memory_total'], host_memory)} "
                                      f"[{size(svc['memory_total'])}]"),
            ]
        lines.append(_line("restarts", svc["restarts"]))
        if svc["last_exit"]:
            lines.append(_line("last exit", svc["last_exit"]))
    if svc["error"]:
        lines.append(_line("error", svc["error"]))
    lines += _check_lines(svc)
    lines.append(_line("data collected", _collected(svc["data_collected"])))
    return "\n".join(lines) + "\n"


def details(status: dict[str, Any], name: str | None = None) -> str:
    """`status` output: every service, or the one named."""
    memory = status["supervisor"].get("host_memory", 0)
    blocks = [service(s, memory) for s in status["services"] if name in (None, s["name"])]
    return header(status) + "\n\n" + "\n".join(blocks)


def report(status: dict[str, Any]) -> str:
    services = status["services"]
    total = len(services)
    groups = {"up": 0, "down": 0, "initialising": 0, "unmonitored": 0}
    for svc in services:
        groups[state_group(svc)] += 1
    lines = [f"{key + ':':<16}{n} ({100.0 * n / total if total else 0:.1f}%)"
             for key, n in groups.items()]
    return "\n".join(lines + [f"{'total:':<16}{total} services"]) + "\n"


def state_group(svc: dict[str, Any]) -> str:
    if svc["monitoring_status"] == "Not monitored":
        return "unmonitored"
    if svc["monitoring_status"] == "Initializing" or svc["status"].startswith("Initializing"):
        return "initialising"
    return "up" if svc["status"].split(" - ")[0] in OK_STATES else "down"


_COLOURS = {"up": "#2e7d32", "down": "#c62828", "initialising": "#ef6c00",
            "unmonitored": "#757575"}


def page(status: dict[str, Any], refresh: int = 5) -> str:
    """The HTML status page: summary table, control buttons, details and recent alerts."""
    esc = html.escape
    rows = []
    for svc in status["services"]:
        colour = _COLOURS[state_group(svc)]
        buttons = "".join(
            f'<form method="post" action="/service/{esc(svc["name"])}/{a}">'
            f'<button>{a}</button></form>' for a in ("start", "stop", "restart", "monitor",
                                                       "unmonitor"))
        rows.append(
            f'<tr><td><a href="#{esc(svc["name"])}">{esc(svc["name"])}</a></td>'
            f'<td style="color:{colour}">{esc(svc["status"])}</td><td>{esc(svc["type"])}</td>'
            f'<td>{svc["pid"] or "-"}</td><td>{uptime(svc["uptime"])}</td>'
            f'<td>{svc["restarts"]}</td><td class="ctl">{buttons}</td></tr>')
    memory = status["supervisor"].get("host_memory", 0)
    blocks = "".join(f'<pre id="{esc(s["name"])}">{esc(service(s, memory))}</pre>'
                     for s in status["services"])
    alerts = "".join(
        f"<li>{esc(time.strftime('%H:%M:%S', time.localtime(a['time'])))} "
        f"{esc(a['service'])}: {esc(a['message'])}</li>"
        for a in reversed(status.get("alerts", [])[-20:]))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh}">
<title>fobs monit</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}}
.ctl form{{display:inline}}pre{{background:#f6f6f6;padding:.8em}}</style></head>
<body><h1>{esc(header(status))}</h1>
<table><tr><th>Service</th><th>Status</th><th>Type</th><th>PID</th><th>Uptime</th>
<th>Restarts</th><th></th></tr>{''.join(rows)}</table>
<h2>Details</h2>{blocks}<h2>Recent alerts</h2><ul>{alerts or '<li>none</li>'}</ul>
<p><a href="/status">JSON</a></p></body></html>
"""
