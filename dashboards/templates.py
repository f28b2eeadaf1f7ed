"""The part of Go's text/template that alert annotations use, rendered as Prometheus renders it.

Annotations are written once and expanded by three engines: Grafana's (provisioned rules),
fobs' evaluator and rule tests (this module), and promtool in the cross-check tests. So this
module accepts only what all three understand, and formats numbers exactly as Go does:

    {{ $labels.job }}  {{ $value }}  {{ .Labels.job }}  {{ .Value }}
    {{ humanize $value }}  {{ $value | humanizePercentage }}  {{ printf "%.2f" $value }}
    functions: humanize, humanize1024, humanizePercentage, humanizeDuration, printf,
               toUpper, toLower, title

A missing label renders as `<no value>`, like Go's map lookup in a template.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fobs.dashboards.errors import TemplateError

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_ARG = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
NO_VALUE = "<no value>"


def go_float(v: float) -> str:
    """Go's `%v` for a float64 (strconv 'g', shortest): 0.05, 1e+06, 123456.7, NaN, +Inf."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1, v) < 0 else "0"
    digits, exp = _shortest(v)
    if exp < -4 or exp >= 6:   # strconv.FormatFloat(v, 'g', -1, 64): shortest, eprec 6
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        sign = "-" if v < 0 else ""
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    text = f"{abs(v):.{max(len(digits) - 1 - exp, 0)}f}"
    return ("-" if v < 0 else "") + text


def _shortest(v: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |v| and its decimal exponent."""
    mantissa, _, exponent = f"{abs(v):.17e}".partition("e")
    for precision in range(17):
        candidate = f"{abs(v):.{precision}e}"
        if float(candidate) == abs(v):
            mantissa, _, exponent = candidate.partition("e")
            break
    return mantissa.replace(".", ""), int(exponent)


def _go_g(v: float, precision: int = 4) -> str:
    """Go's `%.4g` (same as C's, which Python follows, except Inf/NaN spellings)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.{precision}g}"


def humanize(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return _go_g(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return _go_g(v) + prefix
    return _small(v, "")


def _small(v: float, suffix: str) -> str:
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return _go_g(v) + prefix + suffix


def humanize1024(v: float) -> str:
    if abs(v) <= 1 or not math.isfinite(v):
        return _go_g(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _go_g(v) + prefix


def humanize_percentage(v: float) -> str:
    return _go_g(v * 100) + "%"


def humanize_duration(v: float) -> str:
    if not math.isfinite(v):
        return _go_g(v)
    if v == 0:
        return _go_g(v) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        d = int(v)
        seconds, minutes, hours, days = d % 60, d // 60 % 60, d // 3600 % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_g(v)}s"
    return _small(v, "s")


def go_printf(fmt: str, *args: object) -> str:
    """Go's Sprintf for the verbs templates use: %s %v %d %f %e %g %%, with flags and widths."""
    out, i, arg = [], 0, iter(args)
    spec = re.compile(r"%([-+ 0#]*)(\d+)?(?:\.(\d+))?([svdfeEgGxq%])")
    for m in spec.finditer(fmt):
        out.append(fmt[i:m.start()])
        i = m.end()
        flags, width, precision, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        value = next(arg, None)
        if value is None:
            out.append(f"%!{verb}(MISSING)")
            continue
        if verb in "sv":
            text = go_float(value) if isinstance(value, float) else str(value)
            out.append(f"{text:{'<' if '-' in flags else '>'}{width or ''}}")
        elif verb == "q":
            out.append('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif verb in "dx":
            number = int(float(value))  # type: ignore[arg-type]
            out.append(("%" + flags + (width or "") + verb) % number)
        else:
            p = f".{precision}" if precision is not None else ""
            out.append(("%" + flags + (width or "") + p + verb) % float(value))  # type: ignore

    out.append(fmt[i:])
    return "".join(out)


FUNCTIONS: dict[str, Callable[..., str]] = {
    "humanize": lambda v: humanize(float(v)),
    "humanize1024": lambda v: humanize1024(float(v)),
    "humanizePercentage": lambda v: humanize_percentage(float(v)),
    "humanizeDuration": lambda v: humanize_duration(float(v)),
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
    "printf": go_printf,
}


@dataclass(frozen=True)
class Template:
    """A parsed annotation template; `render` never fails once parsing succeeded."""

    text: str

    def __post_init__(self) -> None:
        for m in _ACTION.finditer(self.text):
            for command in m.group(1).split("|"):
                self._check(command.strip(), m.group(0))

    def _check(self, command: str, action: str) -> None:
        args = _ARG.findall(command)
        if not args:
            raise TemplateError(f"empty action {action!r}")
        head = args[0]
        if head in FUNCTIONS:
            args = args[1:]
        elif len(args) > 1:
            raise TemplateError(f"unknown function {head!r} in {action!r} (known: "
                                f"{', '.join(sorted(FUNCTIONS))})")
        for arg in args:
            if not (arg.startswith('"') or _operand(arg) is not None):
                raise TemplateError(f"cannot render {arg!r} in {action!r}: use $labels.NAME, "
                                    f"$value or a quoted string")

    def render(self, labels: Mapping[str, str], value: float) -> str:
        def action(m: re.Match[str]) -> str:
            result: object = None
            for n, command in enumerate(m.group(1).split("|")):
                args = _ARG.findall(command.strip())
                values = [self._eval(a, labels, value) for a in args
                          if not (a in FUNCTIONS and a == args[0])]
                if n > 0:
                    values.append(result)
                result = FUNCTIONS[args[0]](*values) if args[0] in FUNCTIONS else values[0]
            return go_float(result) if isinstance(result, float) else str(result)
        return _ACTION.sub(action, self.text)

    @staticmethod
    def _eval(arg: str, labels: Mapping[str, str], value: float) -> object:
        if arg.startswith('"'):
            return bytes(arg[1:-1], "utf-8").decode("unicode_escape")
        kind, name = _operand(arg)  # type: ignore[misc]
        if kind == "value":
            return value
        return labels.get(name, NO_VALUE)


def _operand(arg: str) -> tuple[str, str] | None:
    if arg in ("$value", ".Value"):
        return ("value", "")
    m = re.fullmatch(r"(?:\$labels|\.Labels)\.(\w+)", arg)
    return ("label", m.group(1)) if m else None


def to_grafana(text: str, value_ref: str) -> str:
    """Grafana's `$value` is a dump of every expression; use the reduced one: `$values.B.Value`."""
    def action(m: re.Match[str]) -> str:
        body = re.sub(r"(?<![\w.])(\$value|\.Value)\b", f"$values.{value_ref}.Value", m.group(1))
        return "{{ " + body + " }}"
    return _ACTION.sub(action, text)
