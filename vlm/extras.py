"""Optional libraries, imported when first needed, with the extra that installs each."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {  # module -> the pip extra that brings it
    "open_clip": "vision-libs",
    "timm": "vision-libs",
    "gradio": "chat",
    "peft": "train",
    "accelerate": "train",
    "deepspeed": "train",
    "datasets": "train",
    "lmms_eval": "eval",
    "bitsandbytes": "gpu",
    "flash_attn": "gpu",
}


class MissingExtraError(ImportError):
    """An optional library is not installed."""


def require(module: str) -> ModuleType:
    """``import module``, or an error saying which extra of vlm installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = EXTRAS.get(module.split(".")[0], "all")
        raise MissingExtraError(
            f"{module} is not installed (needed here); install it with: pip install 'vlm[{extra}]'"
        ) from error
