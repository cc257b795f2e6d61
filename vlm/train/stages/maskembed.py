"""The ``maskembed`` stage: locality alignment of a ViT encoder (MaskEmbed, Covert et al. 2024).

For an image x and a random patch mask m (keep-probability drawn uniformly, then each patch kept
with it), the frozen teacher (the original encoder) encodes the masked image (masked patches zeroed
after normalisation); its output tokens are the target. The trainable student sees the unmasked
image; its output tokens are masked (patches multiplied by m, prefix tokens such as CLS and registers
zeroed), and a small transformer decoder must reconstruct the teacher's output. Each image is used
with m, 1 - m and the all-ones mask; the loss is the MSE over all tokens and channels.

The stage starts from an encoder folder of any vision source kind (`vlm.vision.sources`: transformers
CLIP / SigLIP / DINOv2, open_clip's hub layout, timm's HF layout). Teacher and student are that kind's
`VisionEncoder`, asked for every token of the last block (``vision_feature_layer=-1``, "full": what a
VLM reading layer -1 gets). The result is the student alone, written by the kind's ``save`` into the
source folder's own layout, so it loads wherever the original did (``AutoModel.from_pretrained``,
``open_clip.create_model("local-dir:DIR")``, ``timm.create_model``, ``BuildSpec(vision=DIR)``).
Parts: ``vision`` (the student, trained whole: ``train: {vision: full}``) and ``decoder`` (always trained).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlm.data.maskembed import MaskedImages
from vlm.train.engine import no_zero_init
from vlm.train.stages.base import STAGES, Stage
from vlm.train.tower import Tower, TowerImages
from vlm.vision.base import VisionEncoder


def mask_pixels(pixel_values: torch.Tensor, masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 3, H, W) normalised pixels and (B, V, N) patch masks -> (B*V, 3, H, W), masked patches zeroed."""
    b, v, n = masks.shape
    side = math.isqrt(n)
    grid = masks.reshape(b * v, 1, side, side).repeat_interleave(patch, 2).repeat_interleave(patch, 3)
    return pixel_values.repeat_interleave(v, 0) * grid.to(pixel_values.dtype)


def mask_tokens(tokens: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B, P+N, D) student tokens and (B, V, N) masks -> (B*V, P+N, D): patches times m, prefix zeroed."""
    b, v, n = masks.shape
    prefix = tokens.shape[1] - n
    keep = torch.cat([masks.new_zeros(b, v, prefix), masks], 2).reshape(b * v, -1, 1)
    return tokens.repeat_interleave(v, 0) * keep.to(tokens.dtype)


@dataclass
class AlignedEncoder:
    """The stage's result: the student, saved by ``save_pretrained`` in its tower's own format."""

    tower: Tower
    encoder: VisionEncoder

    def save_pretrained(self, out: Path) -> None:
        self.tower.save(self.encoder, out)


class MaskEmbedDecoder(nn.Module):
    """Learned positions, ``layers`` pre-norm transformer blocks, a final norm and a linear head."""

    def __init__(self, width: int, tokens: int, layers: int = 2, heads: int = 4):
        super().__init__()
        heads = heads if width % heads == 0 else 1
        self.position = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens + self.position
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class MaskEmbedModel(nn.Module):
    """Student + decoder: the module the loop trains (the teacher is held by the stage, frozen)."""

    def __init__(self, student: VisionEncoder, decoder: MaskEmbedDecoder):
        super().__init__()
        self.vision_tower, self.decoder = student, decoder

    def forward(self, pixel_values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.decoder(mask_tokens(self.vision_tower(pixel_values), masks))


@dataclass
class MaskEmbedOptions:
    decoder_layers: int = 2
    decoder_heads: int = 4
    min_keep: float = 0.0  # keep-probability of a mask is drawn uniformly from [min_keep, max_keep]
    max_keep: float = 1.0


@STAGES.register("maskembed")
class MaskEmbedStage(Stage):
    """Starts from an encoder folder (not a VLM) and trains the whole encoder with its decoder."""

    Options = MaskEmbedOptions
    parts = {"vision": "vision_tower", "decoder": "decoder"}

    def __init__(self, config):
        super().__init__(config)
        if config.train != {"vision": "full"}:
            raise ValueError("maskembed trains the whole encoder (and its own decoder): use train vision=full "
                             f"(got {config.train})")
        self.tower: Tower | None = None
        self.teacher: VisionEncoder | None = None
        self._load_teacher = False

    def modes(self) -> dict[str, str]:
        return {"vision": "full", "decoder": "full"}

    def load(self, source: Path, for_training: bool = True) -> VisionEncoder:
        self.tower, self._load_teacher = Tower.open(source), for_training
        return self.tower.encoder()

    def load_processor(self, source: Path) -> TowerImages:
        return Tower.open(source).images()

    def prepare(self, encoder: VisionEncoder) -> MaskEmbedModel:
        if self._load_teacher:
            with no_zero_init():
                self.teacher = self.tower.encoder()
            self.teacher.requires_grad_(False).eval()
        self._load_teacher = False
        cfg = self.options
        torch.manual_seed(0)  # the decoder starts the same in training and in the final save
        decoder = MaskEmbedDecoder(self.tower.width, self.tower.prefix + self.tower.side ** 2, cfg.decoder_layers,
                                   cfg.decoder_heads)
        encoder.requires_grad_(True)
        return MaskEmbedModel(encoder, decoder)

    def dataset(self, processor, seed: int) -> MaskedImages:
        opts = self.options
        return MaskedImages(self.config.data, processor, self.tower.side, opts.min_keep, opts.max_keep, seed)

    def collator(self, processor) -> Any:
        return MaskedImages.collate

    def count_items(self, batch: dict[str, Any]) -> int:
        return int(batch["masks"].shape[0] * batch["masks"].shape[1]) if batch else 0

    def loss(self, model: nn.Module, batch: dict[str, Any], num_items: torch.Tensor) -> torch.Tensor:
        pixels, masks = batch["pixel_values"], batch["masks"]
        reconstruction = model(pixels, masks)
        self.teacher.to(pixels.device)
        with torch.no_grad():
            target = self.teacher(mask_pixels(pixels, masks, self.tower.patch))
        per_view = (reconstruction.float() - target.float()).pow(2).mean(dim=(1, 2))
        return per_view.sum() / num_items

    def finish(self, model: MaskEmbedModel) -> AlignedEncoder:
        """The aligned student alone (the decoder is dropped), saved in its source folder's format."""
        model.requires_grad_(False)
        return AlignedEncoder(self.tower, model.vision_tower)
