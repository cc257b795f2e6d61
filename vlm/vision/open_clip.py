"""Vision towers from open_clip: the image tower of any open_clip model, ViT or timm trunk (the ConvNeXt
CLIPs ConvLLaVA uses, e.g. ``convnext_large_d_320``).

Sources (`vlm.vision.sources`): ``open_clip:MODEL_NAME`` (a built-in config, random weights),
``open_clip:MODEL_NAME@/path/checkpoint`` and open_clip's hub-style folders (``open_clip_config.json``
+ ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``, as laion/* repos ship), e.g.
``open_clip:hf-hub:laion/REPO``. The vision config keeps open_clip's own model config (its vision part,
``embed_dim``, ``quick_gelu``) and preprocess config, so a saved VLM rebuilds the tower offline with no
registry lookup. The tower is built by open_clip's ``_build_vision_tower``, so the text tower (which
may need a transformers download) never is; checkpoints are read by open_clip's ``load_state_dict``
(safetensors, else ``torch.load(weights_only=True)``) and, for a ViT built for another ``image_size``,
its position grid is interpolated by open_clip's ``resize_pos_embed``. Mean, std, resampling and the
image size come from the preprocess config. CLIP training's regularisers (patch dropout, stochastic
depth) are switched off: the VLM wants every token, and a frozen tower must be deterministic.
A trained tower is saved back into such a folder (`save_open_clip_folder`): the whole CLIP, its
``visual.*`` tensors replaced, so ``open_clip.create_model("local-dir:DIR")`` loads it.

Two model types, split as open_clip splits its towers: ``open_clip_vision`` (its VisionTransformer:
``vision_feature_layer`` counts blocks like hidden states, the class token is dropped under "default")
and ``open_clip_timm_vision`` (``timm_model_name``: the trunk's feature map before the head's norm, as
`vlm.vision.timm` takes it, with ConvLLaVA's optional fifth stage). ModifiedResNet towers are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, PreTrainedConfig

from vlm.config import VLMConfig
from vlm.extras import require
from vlm.vision.base import VISION_ENCODERS, VisionEncoder
from vlm.vision.layers import block_indices, concat_levels, stage_blocks
from vlm.vision.sources import (
    SOURCE_KINDS,
    Normalisation,
    SourceKind,
    VisionSource,
    copy_other_files,
    first_file,
    read_json,
    with_trained,
)
from vlm.vision.timm import TimmEncoder

OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenCLIPVisionConfig(PreTrainedConfig):
    model_type = "open_clip_vision"

    model_cfg: dict | None = None  # open_clip's model config: embed_dim, quick_gelu, vision_cfg
    preprocess_cfg: dict | None = None  # open_clip's preprocess config: size, mean, std, interpolation, ...
    image_size: int = 224


class OpenCLIPTimmVisionConfig(OpenCLIPVisionConfig):
    model_type = "open_clip_timm_vision"

    stage5_depth: int = 0
    stage5_hidden_size: int | None = None


for _config in (OpenCLIPVisionConfig, OpenCLIPTimmVisionConfig):
    AutoConfig.register(_config.model_type, _config)


def open_clip_vision_config(model_cfg: dict, preprocess_cfg: dict | None = None) -> OpenCLIPVisionConfig:
    """The vision config of an open_clip model config and preprocess config (open_clip's defaults below it)."""
    vision = {**model_cfg["vision_cfg"], "patch_dropout": 0.0, "timm_drop_path": None, "timm_model_pretrained": False}
    if isinstance(vision.get("layers"), (list, tuple)):
        raise ValueError("this open_clip model's image tower is a ModifiedResNet; "
                         "only its ViT and timm towers are supported")
    side = vision.get("image_size", require("open_clip").CLIPVisionCfg.image_size)
    rows, cols = (side, side) if isinstance(side, int) else side
    if rows != cols:
        raise ValueError(f"open_clip image size {side!r} is not square; VLM images are square")
    transform = require("open_clip.transform")
    preprocess = transform.merge_preprocess_dict(transform.PreprocessCfg(), {**(preprocess_cfg or {}), "size": rows})
    config_class = OpenCLIPTimmVisionConfig if vision.get("timm_model_name") else OpenCLIPVisionConfig
    kept = {"embed_dim": model_cfg["embed_dim"], "quick_gelu": bool(model_cfg.get("quick_gelu", False)),
            "vision_cfg": {**vision, "image_size": rows}}
    return config_class(model_cfg=kept, preprocess_cfg=preprocess, image_size=rows)


def build_visual(vision_config: OpenCLIPVisionConfig) -> nn.Module:
    """open_clip's image tower for the config, random weights, at the config's ``image_size``."""
    model_cfg = vision_config.model_cfg
    vision_cfg = {**model_cfg["vision_cfg"], "image_size": vision_config.image_size}
    return require("open_clip.model")._build_vision_tower(model_cfg["embed_dim"], vision_cfg, quick_gelu=model_cfg["quick_gelu"])


def load_visual(encoder: nn.Module, checkpoint: str) -> None:
    """Load the ``visual.*`` tensors of an open_clip checkpoint into ``encoder.visual`` (strictly)."""
    state = require("open_clip.factory").load_state_dict(checkpoint, weights_only=True)
    visual = {k: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        raise ValueError(f"{checkpoint} holds no open_clip image tower (no 'visual.*' tensors)")
    require("open_clip.model").resize_pos_embed(visual, encoder)  # reads encoder.visual's grid; a no-op unless a ViT's size changed
    encoder.visual.load_state_dict({k.removeprefix("visual."): v for k, v in visual.items()})


@VISION_ENCODERS.register(OpenCLIPVisionConfig.model_type)
class OpenCLIPViTEncoder(VisionEncoder):
    """open_clip's VisionTransformer (``self.visual``); the chosen blocks' tokens via its ``forward_intermediates``."""

    examples = {"tiny-open_clip-vit": {"vision": "tiny-open_clip-vit"}}

    def __init__(self, config: VLMConfig, pretrained: str | None = None):
        super().__init__(config)
        self._levels(config)
        self.visual = build_visual(config.vision_config)
        if pretrained:
            load_visual(self, pretrained)

    @classmethod
    def _vit(cls, config: VLMConfig) -> Any:
        return require("open_clip").CLIPVisionCfg(**config.vision_config.model_cfg["vision_cfg"])

    @classmethod
    def _levels(cls, config: VLMConfig) -> list[int]:
        return block_indices(config.feature_layers, cls._vit(config).layers)

    @classmethod
    def grid(cls, config: VLMConfig, image_size: int) -> tuple[int, int]:
        native = config.vision_config.image_size
        if image_size != native:
            raise ValueError(
                f"this open_clip ViT has position embeddings for {native} px, not {image_size}: build it with "
                f"image_size={native}, or vision_overrides={{'image_size': {image_size}}} to rebuild it for "
                f"{image_size} px (open_clip interpolates the checkpoint's embeddings)"
            )
        side = image_size // cls._vit(config).patch_size
        return side, side

    @classmethod
    def num_prefix_tokens(cls, config: VLMConfig) -> int:
        return 1  # open_clip's ViT always has its class token

    @classmethod
    def out_channels(cls, config: VLMConfig) -> int:
        return cls._vit(config).width * len(cls._levels(config))

    def blocks(self) -> list[nn.Module]:
        return stage_blocks(self, list(self.visual.transformer.resblocks))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        levels = self._levels(self.config)
        keep = self.config.vision_feature_select_strategy == "full"
        take = sorted(set(levels))
        out = self.visual.forward_intermediates(
            pixel_values, indices=take, stop_early=True, intermediates_only=True, output_fmt="NLC",
            output_extra_tokens=keep,
        )
        prefixes = out["image_intermediates_prefix"] if keep else None
        return concat_levels(levels, take, out["image_intermediates"], prefixes)


@VISION_ENCODERS.register(OpenCLIPTimmVisionConfig.model_type)
class OpenCLIPTimmEncoder(TimmEncoder):
    """open_clip's timm tower (``self.visual``); features of its trunk, as the timm encoder takes them."""

    examples = {"tiny-open_clip-convnext + stage 5": {
        "vision": "tiny-open_clip-convnext", "vision_feature_layer": -1, "image_size": 128,
        "vision_overrides": {"stage5_depth": 1, "stage5_hidden_size": 96}}}

    def build_tower(self, config: VLMConfig, pretrained: str | None) -> None:
        self.visual = build_visual(config.vision_config)
        if pretrained:
            load_visual(self, pretrained)

    @property
    def trunk(self) -> nn.Module:
        return self.visual.trunk

    @classmethod
    def timm_spec(cls, config: VLMConfig) -> tuple[str, dict]:
        return config.vision_config.model_cfg["vision_cfg"]["timm_model_name"], {}


def _source(config: OpenCLIPVisionConfig, weights: str | None) -> VisionSource:
    pp = config.preprocess_cfg
    return VisionSource(config, weights, Normalisation.named(pp["mean"], pp["std"], pp["interpolation"]))


def open_clip_folder(folder: Path) -> VisionSource:
    """open_clip's hub layout: ``open_clip_config.json`` (model_cfg, preprocess_cfg) and its weights."""
    weights = first_file(folder, OPEN_CLIP_WEIGHTS, "open_clip_config.json")
    saved = read_json(folder / "open_clip_config.json")
    if "model_cfg" not in saved:
        raise ValueError(f"{folder / 'open_clip_config.json'} has no model_cfg")
    return _source(open_clip_vision_config(saved["model_cfg"], saved.get("preprocess_cfg")), str(weights))


def save_open_clip_folder(encoder: nn.Module, folder: Path, out: Path) -> None:
    """``encoder``'s image tower in ``folder``'s layout: its checkpoint (text tower included) with the
    ``visual.*`` tensors replaced, as ``open_clip_model.safetensors``, and its other files."""
    weights = first_file(folder, OPEN_CLIP_WEIGHTS, "open_clip_config.json")
    trained = {f"visual.{k}": v for k, v in encoder.visual.state_dict().items()}
    state = with_trained(require("open_clip.factory").load_state_dict(str(weights), weights_only=True), trained, str(weights))
    copy_other_files(folder, out)
    save_file(state, out / OPEN_CLIP_WEIGHTS[0])


def open_clip_named(name: str, checkpoint: str | None) -> VisionSource:
    open_clip = require("open_clip")
    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise ValueError(f"open_clip has no built-in model {name!r} (open_clip.list_models() lists the "
                         f"{len(open_clip.list_models())} it has)")
    return _source(open_clip_vision_config(model_cfg), checkpoint)


SOURCE_KINDS.register("open_clip", SourceKind(
    marker="open_clip_config.json",
    recognise=lambda folder: (folder / "open_clip_config.json").is_file(),
    folder=open_clip_folder,
    named=open_clip_named,
    priority=1,
    save=save_open_clip_folder,
))
