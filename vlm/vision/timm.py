"""Vision towers from timm: any timm architecture by name, random or with local weights.

Sources (`vlm.vision.sources`): ``timm:NAME`` (random), ``timm:NAME@/path/weights.safetensors``, or a
folder in timm's Hugging Face layout (``config.json`` with ``architecture`` + ``model.safetensors``; a
``hf-hub:`` repo is one). The VLM's vision config (`TimmVisionConfig`) keeps the architecture and its
``timm.create_model`` arguments, so a saved VLM rebuilds the tower offline. The classifier is dropped;
a trained tower saved back into such a folder (`save_timm_folder`) keeps the original's head.

Features come from timm's ``forward_intermediates``; ``vision_feature_layer`` counts blocks (ViTs) or
stages (CNNs) like transformers' hidden states (`vlm.vision.layers.block_indices`). ViT-style models
put their ``num_prefix_tokens`` (CLS, registers) in front, dropped under "default"; CNN feature maps
are flattened row-major. Selected layers must share one grid. Grids and widths are read off the model
itself: a copy on the meta device (no memory, no arithmetic of ours) runs at the asked size, so they
are exact for any architecture and a size the model refuses fails at build time with timm's message.

ConvLLaVA's fifth stage (``stage5_depth``, ``stage5_hidden_size``; see `vlm.vision.convnext`) extends
timm ConvNeXts with timm's own ``ConvNeXtStage``; open_clip's ConvNeXt towers (a timm trunk) share it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, PreTrainedConfig

from vlm.config import VLMConfig
from vlm.extras import require
from vlm.vision.base import VISION_ENCODERS, VisionEncoder
from vlm.vision.convnext import STAGE5_SEED
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

TIMM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


class TimmVisionConfig(PreTrainedConfig):
    model_type = "timm_vision"

    architecture: str = "vit_base_patch16_224"
    model_args: dict | None = None  # timm.create_model keywords (img_size, dynamic_img_size, reg_tokens, ...)
    image_size: int = 224
    stage5_depth: int = 0
    stage5_hidden_size: int | None = None


AutoConfig.register(TimmVisionConfig.model_type, TimmVisionConfig)


def create_timm(architecture: str, model_args: dict | None = None, weights: str | None = None) -> nn.Module:
    """A timm model without classifier: random, or with ``weights`` (a checkpoint file, or a folder in
    timm's HF layout). timm loads them (safetensors, else ``weights_only``) and drops the old head."""
    kwargs = {**(model_args or {}), "num_classes": 0}
    if not weights:
        return require("timm").create_model(architecture, pretrained=False, **kwargs)
    if Path(weights).is_dir():
        return require("timm").create_model(f"local-dir:{weights}", pretrained=True, **kwargs)
    return require("timm").create_model(architecture, pretrained=True, pretrained_cfg_overlay={"file": weights}, **kwargs)


@functools.lru_cache(maxsize=32)
def _meta_model(architecture: str, args_json: str) -> nn.Module:
    with torch.device("meta"):
        return create_timm(architecture, json.loads(args_json))


@functools.lru_cache(maxsize=256)
def _meta_shapes(architecture: str, args_json: str, indices: tuple[int, ...], size: int) -> tuple[tuple, ...]:
    """(channels, rows, cols) of each selected feature level for a square ``size`` input."""
    model = _meta_model(architecture, args_json)
    pixels = torch.empty(1, 3, size, size, device="meta")
    outputs = model.forward_intermediates(pixels, indices=list(indices), intermediates_only=True)
    return tuple(tuple(out.shape[1:]) for out in outputs)


def stage5_depth(vision_config: PreTrainedConfig) -> int:
    """Blocks of ConvLLaVA's fifth stage; 0: there is none."""
    return int(getattr(vision_config, "stage5_depth", 0) or 0)


def stage5_width(vision_config: PreTrainedConfig, last_width: int) -> int:
    """The fifth stage's width: twice the last stage's unless set."""
    return int(getattr(vision_config, "stage5_hidden_size", None) or 2 * last_width)


def _like(norm: nn.Module) -> functools.partial:
    return functools.partial(type(norm), eps=norm.eps)


def convnext_stage5(trunk: nn.Module, depth: int, width: int) -> nn.Module:
    """A fifth stage on a timm ConvNeXt: norm + 2x2 stride-2 conv to ``width``, then ``depth`` blocks made like
    the last stage's (kernel, MLP kind, norms, activation), initialised from a fixed seed with timm's ConvNeXt init."""
    if not isinstance(trunk, require("timm.models.convnext").ConvNeXt):
        raise ValueError(f"a fifth stage (stage5_depth) extends a ConvNeXt; this tower is a {type(trunk).__name__}")
    last = trunk.stages[-1]
    block = last.blocks[-1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(STAGE5_SEED)
        stage = require("timm.models.convnext").ConvNeXtStage(
            trunk.num_features, width, kernel_size=block.conv_dw.kernel_size[0], stride=2, depth=depth,
            ls_init_value=1e-6 if block.gamma is not None else None, conv_mlp=block.use_conv_mlp,
            conv_bias=block.conv_dw.bias is not None, use_grn=isinstance(block.mlp, require("timm.layers").GlobalResponseNormMlp),
            act_layer=type(block.mlp.act), norm_layer=_like(last.downsample[0]), norm_layer_cl=_like(block.norm),
        )
        require("timm.models").named_apply(require("timm.models.convnext")._init_weights, stage)
    return stage.to(next(trunk.parameters()).dtype)


class TimmEncoder(VisionEncoder):
    """A timm model (``self.model``), its selected feature levels as tokens, plus an optional fifth stage."""

    examples = {"tiny-timm-vit": {"vision": "tiny-timm-vit"}}

    def __init__(self, config: VLMConfig, pretrained: str | None = None):
        super().__init__(config)
        self._levels(config)  # refuses bad layer choices before anything is built
        self.build_tower(config, pretrained)
        vision, depth = config.vision_config, stage5_depth(config.vision_config)
        width = stage5_width(vision, self.trunk.num_features)
        self.stage5 = convnext_stage5(self.trunk, depth, width) if depth else None

    def build_tower(self, config: VLMConfig, pretrained: str | None) -> None:
        self.model = create_timm(*self.timm_spec(config), weights=pretrained)

    @property
    def trunk(self) -> nn.Module:
        """The timm model the features come from."""
        return self.model

    @classmethod
    def timm_spec(cls, config: VLMConfig) -> tuple[str, dict]:
        """(architecture, create_model arguments) of the tower."""
        return config.vision_config.architecture, dict(config.vision_config.model_args or {})

    @classmethod
    def _key(cls, config: VLMConfig) -> tuple[str, str]:
        architecture, args = cls.timm_spec(config)
        return architecture, json.dumps(args, sort_keys=True)

    @classmethod
    def _levels(cls, config: VLMConfig) -> list[int]:
        """The trunk's feature levels to take, in ``vision_feature_layer`` order (the last one under a fifth stage)."""
        levels = len(_meta_model(*cls._key(config)).feature_info)
        has5 = stage5_depth(config.vision_config) > 0
        indices = block_indices(config.feature_layers, levels + has5)
        if has5 and indices != [levels]:
            raise ValueError(f"with a fifth stage only its output is taken: set vision_feature_layer=-1, "
                             f"got {config.vision_feature_layer!r}")
        return [levels - 1] if has5 else indices

    @classmethod
    def _shapes(cls, config: VLMConfig, image_size: int) -> list[tuple[int, int, int]]:
        levels = cls._levels(config)
        take = tuple(sorted(set(levels)))
        by_level = dict(zip(take, _meta_shapes(*cls._key(config), take, image_size), strict=True))
        return [by_level[i] for i in levels]

    @classmethod
    def grid(cls, config: VLMConfig, image_size: int) -> tuple[int, int]:
        grids = {(rows, cols) for _, rows, cols in cls._shapes(config, image_size)}
        if len(grids) != 1:
            raise ValueError(f"the selected layers {config.vision_feature_layer!r} have different grids "
                             f"{sorted(grids)} at {image_size} px; choose layers of one resolution")
        rows, cols = grids.pop()
        if stage5_depth(config.vision_config):  # its 2x2 stride-2 downsampling
            rows, cols = rows // 2, cols // 2
        return rows, cols

    @classmethod
    def num_prefix_tokens(cls, config: VLMConfig) -> int:
        return int(getattr(_meta_model(*cls._key(config)), "num_prefix_tokens", 0))

    @classmethod
    def out_channels(cls, config: VLMConfig) -> int:
        size = int(config.image_size)
        widths = [channels for channels, _, _ in cls._shapes(config, size)]
        vision = config.vision_config
        return stage5_width(vision, widths[-1]) if stage5_depth(vision) else sum(widths)

    def blocks(self) -> list[nn.Module]:
        stages = [self.trunk.get_submodule(info["module"]) for info in self.trunk.feature_info]
        return stage_blocks(self, stages + ([self.stage5] if self.stage5 is not None else []))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        levels = self._levels(self.config)
        keep = self.config.vision_feature_select_strategy == "full" and self.num_prefix_tokens(self.config) > 0
        take = sorted(set(levels))
        extra = {"return_prefix_tokens": True} if keep else {}
        outputs = self.trunk.forward_intermediates(
            pixel_values, indices=take, intermediates_only=True, stop_early=True, **extra
        )
        maps, prefixes = zip(*outputs, strict=True) if keep else (outputs, None)
        if self.stage5 is not None:
            maps = [self.stage5(maps[0])]
        return concat_levels(levels, take, [m.flatten(2).transpose(1, 2) for m in maps], prefixes)


VISION_ENCODERS.register(TimmVisionConfig.model_type, TimmEncoder)


def _source(architecture: str, model_args: dict, pretrained_cfg: dict, weights: str | None) -> VisionSource:
    data = require("timm.data").resolve_data_config(pretrained_cfg=pretrained_cfg)
    config = TimmVisionConfig(
        architecture=architecture,
        model_args={k: v for k, v in model_args.items() if k != "num_classes"},
        image_size=int(data["input_size"][-1]),
    )
    return VisionSource(config, weights, Normalisation.named(data["mean"], data["std"], data["interpolation"]))


def timm_folder(folder: Path) -> VisionSource:
    """A folder in timm's HF layout, read by timm's own parser."""
    first_file(folder, TIMM_WEIGHTS, "a timm config.json")
    pretrained_cfg, architecture, model_args = require("timm.models._hub").load_model_config_from_path(folder)
    return _source(architecture, dict(model_args or {}), pretrained_cfg, str(folder))


def save_timm_folder(encoder: nn.Module, folder: Path, out: Path) -> None:
    """``encoder``'s timm model in ``folder``'s layout: its weights with the trained tensors replaced (the
    classifier, which the encoder drops, kept), as ``model.safetensors``, and its config.json."""
    if getattr(encoder, "stage5", None) is not None:
        raise ValueError("a fifth stage (stage5_depth) has no place in a timm folder; save the VLM instead")
    weights = first_file(folder, TIMM_WEIGHTS, "a timm config.json")
    state = with_trained(require("timm.models").load_state_dict(str(weights), weights_only=True), encoder.trunk.state_dict(), str(weights))
    copy_other_files(folder, out)
    save_file(state, out / TIMM_WEIGHTS[0])


def timm_named(name: str, checkpoint: str | None) -> VisionSource:
    timm = require("timm")
    if not timm.is_model(name):
        known = len(timm.list_models())
        raise ValueError(f"timm has no architecture {name!r} (timm.list_models() lists the {known} it has)")
    pretrained_cfg = timm.models.get_pretrained_cfg(name)  # mean/std/size of the name's default weights
    return _source(name, {}, pretrained_cfg.to_dict() if pretrained_cfg else {}, checkpoint)


SOURCE_KINDS.register("timm", SourceKind(
    marker="config.json with architecture",
    recognise=lambda folder: "architecture" in read_json(folder / "config.json"),
    folder=timm_folder,
    named=timm_named,
    priority=2,
    save=save_timm_folder,
))
