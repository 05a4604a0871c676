"""Typed configuration helpers: dataclasses to/from JSON and dotted command-line overrides.

Every component has a frozen dataclass config; nesting is allowed. ``from_dict`` rebuilds nested
dataclasses from plain JSON and rejects unknown keys (naming them and the valid ones), so a typo in a
checkpoint or a preset never goes unnoticed; numbers must be finite (a ``NaN`` in a config.json is refused) and
each config's own ``__post_init__`` checks its ranges. Every refusal is a :class:`~aware3d.errors.ConfigError`
naming the config and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from .errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    """A dataclass (possibly nested) as plain JSON-ready data (tuples become lists)."""
    def conv(v):
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(cfg)


def _coerce(tp, value, where: str):
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except (ValueError, TypeError) as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}: {'; '.join(errors)}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, get_args(tp)))}")
        return value
    if origin in (tuple, list):
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        seq = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict, where: str | None = None) -> T:
    """Build dataclass ``cls`` from plain data; unknown keys, bad types, non-finite numbers and values its
    ``__post_init__`` refuses raise :class:`~aware3d.errors.ConfigError` naming ``where`` and the field."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object with the fields of {cls.__name__}, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(map(str, set(data) - set(names)))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # the config's own range checks (__post_init__)
        raise ConfigError(f"{where}: {e}") from e


def _parse_scalar(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: T, overrides: list[str] | None) -> T:
    """Return ``cfg`` with dotted ``key=value`` overrides applied, e.g. ``render.num_samples=24``.

    Values are parsed as JSON (numbers, true/false, lists), else taken as strings; types are checked
    against the dataclass fields.
    """
    if not overrides:
        return cfg
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. render.num_samples=24)")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section of {type(cfg).__name__}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: no field {parts[-1]!r}; valid: {', '.join(node)}")
        node[parts[-1]] = _parse_scalar(value)
    try:
        return from_dict(type(cfg), data)
    except ConfigError as e:
        raise ConfigError(f"{e} (after the override(s) {' '.join(overrides)})") from e
