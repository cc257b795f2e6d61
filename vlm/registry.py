"""Registries: exact-key lookup of named parts (encoders, projectors, stages, data sources, tasks, ...).

A registry may name the package its members live in: the first lookup imports every module of that
package, so a new member is one new file there and no list is edited anywhere. Parts that live
outside the core (the tiny backbones, the shapes world, a user's own package) are *plugins*: modules
named under the ``vlm.plugins`` entry-point group, imported the first time a registry is asked for
a key it does not hold or for all of its keys. The core never imports them.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")
PLUGIN_GROUP = "vlm.plugins"
_plugins_loaded = False
REGISTRIES: list[Registry] = []  # every registry, in creation order (the architecture's table lists them)


def load_plugins() -> None:
    """Import every module named in the ``vlm.plugins`` entry-point group (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        entry.load()


def import_package(package: str) -> None:
    """Import every module of ``package`` (members register themselves on import)."""
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")


class Registry(Generic[T]):
    """Maps exact string keys to members. Unknown keys raise a KeyError listing the known ones.

    ``package``: the package whose modules hold the members (imported on first lookup); ``plugins``:
    whether plugins may add members (False keeps a lookup from ever importing them)."""

    def __init__(self, kind: str, package: str | None = None, plugins: bool = True):
        self.kind, self.package, self.plugins = kind, package, plugins
        self.module = sys._getframe(1).f_globals.get("__name__", "")  # where the registry is defined
        self._members: dict[str, T] = {}
        self._imported = package is None
        REGISTRIES.append(self)

    def register(self, key: str, member: T | None = None) -> Callable[[T], T] | T:
        """Register ``member`` under ``key``; usable as a decorator when ``member`` is omitted."""

        def add(obj: T) -> T:
            if key in self._members:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._members[key] = obj
            return obj

        return add if member is None else add(member)

    def _own(self) -> dict[str, T]:
        if not self._imported:
            self._imported = True
            import_package(self.package)
        return self._members

    def _all(self) -> dict[str, T]:
        self._own()
        if self.plugins:
            load_plugins()
        return self._members

    def get(self, key: str) -> T:
        members = self._own() if key in self._own() else self._all()
        try:
            return members[key]
        except KeyError:
            close = difflib.get_close_matches(key, list(members), n=3)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            known = ", ".join(sorted(members)) or "(none)"
            raise KeyError(f"unknown {self.kind} {key!r}; {hint}known: {known}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._own() or key in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._all()))

    def keys(self) -> list[str]:
        return sorted(self._all())
