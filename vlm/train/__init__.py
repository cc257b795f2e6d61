"""Staged training: recipes of stages over one accelerate loop."""

from vlm.train.config import DataConfig, LoraConfig, OptimConfig, Recipe, RunConfig, StageConfig
from vlm.train.stages import STAGES, Stage

__all__ = ["DataConfig", "LoraConfig", "OptimConfig", "Recipe", "RunConfig", "STAGES", "Stage", "StageConfig"]

from vlm.train import maskembed, preference  # noqa: E402,F401  (register the maskembed and dpo stages)
