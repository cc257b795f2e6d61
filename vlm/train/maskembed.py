"""The ``maskembed`` stage: locality alignment of a ViT encoder (MaskEmbed, Covert et al. 2024).

For an image x and a random patch mask m (keep-probability drawn uniformly, then each patch kept
with it), the frozen teacher (the original encoder) encodes the masked image (masked patches zeroed
after normalisation); its output tokens are the target. The trainable student sees the unmasked
image; its output tokens are masked (patches multiplied by m, prefix tokens such as CLS zeroed), and
a small transformer decoder must reconstruct the teacher's output. Each image is used with m, 1 - m
and the all-ones mask; the loss is the MSE over all tokens and channels.

The stage starts from an encoder folder (transformers CLIP / SigLIP / DINOv2 vision towers, any
``AutoModel`` ViT) and its result is the student alone, saved in the same format, so it loads
wherever the original did (``AutoModel.from_pretrained``, ``BuildSpec(vision=...)``). Parts, for the
loop's optimizer and tables: ``vision`` = the student, ``projector`` = the decoder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoImageProcessor, AutoModel, PreTrainedModel

from vlm.data.maskembed import MaskedImages
from vlm.train.engine import no_zero_init
from vlm.train.stages import STAGES, Stage


def patch_grid(encoder: PreTrainedModel) -> int:
    """Patches per side at the encoder's configured image size."""
    return int(encoder.config.image_size) // int(encoder.config.patch_size)


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

    def __init__(self, student: PreTrainedModel, decoder: MaskEmbedDecoder):
        super().__init__()
        self.vision_tower, self.projector = student, decoder

    def forward(self, pixel_values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        tokens = self.vision_tower(pixel_values=pixel_values).last_hidden_state
        return self.projector(mask_tokens(tokens, masks))


@STAGES.register("maskembed")
class MaskEmbedStage(Stage):
    """Starts from an encoder folder (not a VLM); ``train.vision`` must be ``full`` (the decoder always trains)."""

    def __init__(self, config):
        super().__init__(config)
        if config.train.get("vision") != "full" or config.train.get("llm", "frozen") != "frozen":
            raise ValueError("maskembed trains the whole encoder and its decoder (the 'projector' part): use train "
                             f"vision=full, llm=frozen (got {config.train})")
        self.teacher: PreTrainedModel | None = None
        self._training_from: Path | None = None
        self.side = 0

    def load(self, source: Path, for_training: bool = True) -> PreTrainedModel:
        self._training_from = Path(source) if for_training else None
        return AutoModel.from_pretrained(source)

    def load_processor(self, source: Path):
        return AutoImageProcessor.from_pretrained(source)

    def prepare(self, encoder: PreTrainedModel) -> MaskEmbedModel:
        if self._training_from is not None:
            with no_zero_init():
                self.teacher = AutoModel.from_pretrained(self._training_from)
            self.teacher.requires_grad_(False).eval()
        self._training_from = None
        with torch.no_grad():
            probe = torch.zeros(1, 3, encoder.config.image_size, encoder.config.image_size)
            tokens, width = encoder(pixel_values=probe).last_hidden_state.shape[1:]
        cfg = self.config.maskembed
        self.side = patch_grid(encoder)
        torch.manual_seed(0)  # the decoder starts the same in training and in the final save
        decoder = MaskEmbedDecoder(width, tokens, cfg.decoder_layers, cfg.decoder_heads)
        encoder.requires_grad_(True)
        return MaskEmbedModel(encoder, decoder)

    def dataset(self, processor, seed: int) -> MaskedImages:
        cfg = self.config
        return MaskedImages(cfg.data, processor, self.side, cfg.maskembed.min_keep, cfg.maskembed.max_keep, seed)

    def collator(self, processor) -> Any:
        return MaskedImages.collate

    def count_items(self, batch: dict[str, Any]) -> int:
        return int(batch["masks"].shape[0] * batch["masks"].shape[1]) if batch else 0

    def loss(self, model: nn.Module, batch: dict[str, Any], num_items: torch.Tensor) -> torch.Tensor:
        pixels, masks = batch["pixel_values"], batch["masks"]
        reconstruction = model(pixels, masks)
        self.teacher.to(pixels.device)
        with torch.no_grad():
            target = self.teacher(pixel_values=mask_pixels(pixels, masks, self.teacher.config.patch_size)).last_hidden_state
        per_view = (reconstruction.float() - target.float()).pow(2).mean(dim=(1, 2))
        return per_view.sum() / num_items

    def finish(self, model: MaskEmbedModel) -> PreTrainedModel:
        """The aligned student alone, in the encoder's own class (the decoder is dropped)."""
        model.requires_grad_(False)
        return model.vision_tower
