"""``--a.b.c value`` command-line overrides for nested dataclasses, and YAML dumps of the result.

Paths follow field names; a list of named dataclasses (the recipe's stages) is indexed by name,
e.g. ``--stages.instruct.optim.lr 2e-5``. Values are parsed by the field's annotated type:
``none`` for optionals, ``a,b`` for lists, ``k=v,k=v`` for dicts, ``true``/``false`` for flags.
"""

from __future__ import annotations

import dataclasses
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
        if name not in hints:
            raise OverrideError(f"--{path}: {type(parent).__name__} has no field {name!r}; fields: {list(hints)}")
        try:
            setattr(parent, name, coerce(value, hints[name]))
        except (TypeError, ValueError) as e:
            raise OverrideError(f"--{path} {value!r}: {e}") from None


def _walk(obj: Any, path: str) -> tuple[Any, str]:
    *parents, name = path.split(".")
    for part in parents:
        if isinstance(obj, list):
            named = [item for item in obj if getattr(item, "name", None) == part]
            if not named:
                raise OverrideError(f"--{path}: no item named {part!r}; names: {[getattr(i, 'name', '?') for i in obj]}")
            obj = named[0]
        elif dataclasses.is_dataclass(obj) and hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            raise OverrideError(f"--{path}: {type(obj).__name__} has no field {part!r}")
    if not dataclasses.is_dataclass(obj):
        raise OverrideError(f"--{path}: {name!r} is not inside a config section")
    return obj, name


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
