"""The recipe registry: each recipe module registers its embedded default and its presets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vlm.registry import Registry
from vlm.train.config import Recipe


@dataclass(frozen=True)
class RecipeEntry:
    """A named recipe: ``default`` runs with no flags (the embedded default, CPU-sized); ``presets`` are
    one ``--preset NAME`` away (the papers' settings, variants). ``doc`` is the module's docstring."""

    default: Recipe
    presets: Mapping[str, Recipe] = field(default_factory=dict)
    doc: str = ""

    @property
    def summary(self) -> str:
        return (self.doc.strip().splitlines() or [""])[0]

    def preset(self, name: str | None) -> Recipe:
        if name is None:
            return self.default
        if name not in self.presets:
            raise SystemExit(f"unknown preset {name!r}; presets: {sorted(self.presets)}")
        return self.presets[name]


RECIPES: Registry[RecipeEntry] = Registry("recipe", package="vlm.recipes")
