"""A flat registry: exact-key lookup of named parts (encoders, projectors, templates, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps exact string keys to members. Unknown keys raise a KeyError listing the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._members: dict[str, T] = {}

    def register(self, key: str, member: T | None = None) -> Callable[[T], T] | T:
        """Register ``member`` under ``key``; usable as a decorator when ``member`` is omitted."""

        def add(obj: T) -> T:
            if key in self._members:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._members[key] = obj
            return obj

        return add if member is None else add(member)

    def get(self, key: str) -> T:
        try:
            return self._members[key]
        except KeyError:
            known = ", ".join(sorted(self._members)) or "(none)"
            raise KeyError(f"unknown {self.kind} {key!r}; known: {known}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._members))

    def keys(self) -> list[str]:
        return sorted(self._members)
