"""TOML config → frozen dataclasses, validated at load with errors that name the bad key.

Every daemon describes its config as (nested) dataclasses whose fields carry defaults; `load`
reads a TOML file, applies command-line overrides and builds the dataclass. Unknown keys and
wrong types are errors that name the full dotted path (Prometheus' `UnmarshalStrict`, Telegraf's
"fields … not used"); cross-field checks go in each dataclass's `validate()`.

Usage:
    cfg = load(CollectorConfig, path, overrides={"nats.servers": ["nats://h:4222"]})
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from fobs.components.errors import ConfigError as ConfigError  # defined there, used from here

T = TypeVar("T")


def load(cls: type[T], path: str | Path | None = None,
         overrides: Mapping[str, Any] | None = None) -> T:
    """Read `path` (optional), apply dotted-key `overrides` (None values skipped), build `cls`."""
    data: dict[str, Any] = {}
    where = ""
    if path is not None:
        where = str(path)
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return build(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, strictly, then `validate` what was built."""
    obj = _build(cls, data, path)
    validate(obj, path)
    return obj


def validate(obj: Any, path: str = "") -> None:
    """Run every nested dataclass's `validate()`, innermost first; errors name the dotted path.

    The one validation walk: `build` runs it on what it read, and a config built in code (as
    `fobs up` builds the supervisor's) runs it before use, with the same messages a file gets.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return
    for f in dataclasses.fields(obj):
        key = _join(path, f.name)
        value = getattr(obj, f.name)
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                validate(item, f"{key}[{i}]")
        elif isinstance(value, Mapping):
            for k, item in value.items():
                validate(item, _join(key, str(k)))
        else:
            validate(value, key)
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ConfigError as e:
            raise ConfigError(f"{_join(path, '') if path else ''}{e}") from None


def _build(cls: type[T], data: Any, path: str) -> T:
    """Dataclass `cls` from a mapping, strictly (unknown keys, wrong types); not yet validated."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a table, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"[{path}]" if path else "the top level"
        raise ConfigError(f"unknown key {_join(path, unknown[0])!r} in {where} "
                          f"(known keys: {', '.join(sorted(fields))})")
    kwargs = {name: _convert(hints[name], value, _join(path, name))
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field without default was not given
        raise ConfigError(f"{path or 'config'}: {e}") from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)
    return f"{kind} ({value!r})" if not isinstance(value, (dict, list)) else kind


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{path}: must be one of {', '.join(repr(a) for a in args)}, "
                              f"got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)  # type: ignore[arg-type]
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected an array, got {_describe(value)}")
        item = args[0] if args else Any
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a table, got {_describe(value)}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, _join(path, str(k))) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {_describe(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {_describe(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_describe(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a programming error


def positive(value: float, key: str) -> None:
    """Raise ConfigError unless value > 0 (a helper for validate())."""
    if value <= 0:
        raise ConfigError(f"{key}: must be greater than 0, got {value}")


def host_port(value: str, key: str) -> tuple[str, int]:
    """Parse 'HOST:PORT' (IPv6 as '[::1]:514'), raising ConfigError naming `key`."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{key}: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def nats_subject(value: str, key: str) -> None:
    """Raise ConfigError naming `key` unless `value` is a subject one can publish on."""
    if not value or any(c in value for c in " \t*>") or ".." in value \
            or value.startswith(".") or value.endswith("."):
        raise ConfigError(f"{key}: not a NATS subject: {value!r}")


def user_and_password(user: str, password: str) -> None:
    """Raise ConfigError unless basic auth's user and password are both set or both empty."""
    if bool(user) != bool(password):
        raise ConfigError("user: user and password go together (or leave both empty)")


def credentials_flag(value: str, flag: str = "--credentials") -> tuple[str, str]:
    """(user, password) from a `USER:PASS` flag; both parts are needed."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError(f"{flag}: expected USER:PASS")
    return user, password
