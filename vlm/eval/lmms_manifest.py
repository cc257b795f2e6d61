"""The ``lmms_eval.models`` entry point: lmms-eval loads this to find ``--model vlm``."""

from __future__ import annotations

from typing import Any


def manifest() -> Any:
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="vlm", simple_class_path="vlm.eval.lmms_adapter.VLMLmms")
