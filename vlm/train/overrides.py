"""``--a.b.c value`` command-line overrides for nested dataclasses, and YAML dumps of the result.

Paths follow field names; a list of named dataclasses (the recipe's stages) is indexed by name,
e.g. ``--stages.instruct.optim.lr 2e-5``. A dataclass may delegate names it lacks to fields that
hold dataclasses (``delegates``: a stage's ``options``), so ``--stages.instruct.lora.r 16`` reaches
``options.lora.r``. Values are parsed by the field's annotated type: ``none`` for optionals, ``a,b``
for lists, ``k=v,k=v`` for dicts, ``true``/``false`` for flags. `from_dict` rebuilds dataclasses
from a YAML dump.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

import yaml


class OverrideError(ValueError):
    """An override names no field or its value does not parse as the field's type."""


def parse_overrides(argv: list[str]) -> dict[str, str]:
    """``["--a.b", "1", "--flag"]`` -> ``{"a.b": "1", "flag": "true"}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise OverrideError(f"expected --key value, got {arg!r}")
        key = arg[2:].replace("-", "_")
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value, i = argv[i + 1], i + 2
        else:
            value, i = "true", i + 1
        out[key] = value
    return out


def apply_overrides(obj: Any, overrides: dict[str, str]) -> None:
    for path, value in overrides.items():
        parent, name = _walk(obj, path)
        hints = typing.get_type_hints(type(parent))
        try:
            setattr(parent, name, coerce(value, hints[name]))
        except (TypeError, ValueError) as e:
            raise OverrideError(f"--{path} {value!r}: {e}") from None


def _walk(obj: Any, path: str) -> tuple[Any, str]:
    """The dataclass holding the last field of ``path``, and that field's name."""
    *parents, name = path.split(".")
    for part in parents:
        if isinstance(obj, list):
            names = [getattr(item, "name", "?") for item in obj]
            if part not in names:
                raise OverrideError(f"--{path}: no item named {part!r}{_close(part, names)}; names: {names}")
            obj = obj[names.index(part)]
        else:
            obj = getattr(*_owner(obj, part, path))
            if not (dataclasses.is_dataclass(obj) or isinstance(obj, list)):
                raise OverrideError(f"--{path}: {part!r} is a value, not a config section")
    return _owner(obj, name, path)


def _owner(obj: Any, name: str, path: str) -> tuple[Any, str]:
    """``(obj, name)`` when ``obj`` has field ``name``, else the delegate of ``obj`` that has it."""
    if not dataclasses.is_dataclass(obj):
        raise OverrideError(f"--{path}: {name!r} is not inside a config section")
    if name in _fields(obj):
        return obj, name
    for delegate in getattr(type(obj), "delegates", ()):
        inner = getattr(obj, delegate)
        if dataclasses.is_dataclass(inner) and name in _fields(inner):
            return inner, name
    valid = [*_fields(obj), *(f for d in getattr(type(obj), "delegates", ()) for f in _fields(getattr(obj, d)))]
    raise OverrideError(f"--{path}: {type(obj).__name__} has no field {name!r}{_close(name, valid)}; fields: {valid}")


def _fields(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []


def _close(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=3)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def coerce(value: str, annotation: Any) -> Any:
    """Parse a command-line string as ``annotation`` (str, int, float, bool, Literal, list, dict, unions)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and value.lower() in ("none", "null"):
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"choose one of {list(args)}")
        return value
    if origin is list:
        return [coerce(v.strip(), args[0]) for v in value.split(",") if v.strip()]
    if origin is dict:
        pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError("expected k=v,k=v")
        return {k.strip(): coerce(v.strip(), args[1]) for k, v in pairs}
    if annotation is bool:
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ValueError("expected true or false")
    if annotation in (int, float, str):
        return annotation(value)
    raise TypeError(f"cannot parse {annotation} from the command line")


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(dataclasses.asdict(obj), sort_keys=False)


def from_dict(cls: type, data: Any) -> Any:
    """A ``cls`` dataclass from nested dicts (a YAML dump): fields typed as dataclasses, or lists of
    them, are rebuilt; other values are kept as they are. Unknown keys raise `OverrideError`."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise OverrideError(f"{cls.__name__} has no field {unknown[0]!r}{_close(unknown[0], names)}; fields: {names}")
    return cls(**{key: _rebuild(hints[key], value) for key, value in data.items()})


def _rebuild(annotation: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return from_dict(annotation, value)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args and dataclasses.is_dataclass(args[0]) and isinstance(value, list):
        return [from_dict(args[0], v) if isinstance(v, dict) else v for v in value]
    return value
