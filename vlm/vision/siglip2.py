"""SigLIP2 NaFlex towers (``siglip2_vision_model``) on the fixed token grid every encoder here gives.

transformers' Siglip2VisionModel takes images as flattened patch sequences with a
``pixel_attention_mask`` and each image's ``spatial_shapes`` (NaFlex: any aspect ratio within a patch
budget, the learned position grid resized to each shape). The VLM hands its encoder square images of
one size: the NaFlex case of one full, unpadded grid. So pixels are cut into patches with
transformers' own ``convert_image_to_patches``, every patch attends, and an image becomes
(image_size / patch_size)^2 tokens whatever ``num_patches`` (the position grid it is resized from) is.
"""

from __future__ import annotations

import torch
from transformers.models.siglip2.image_processing_siglip2 import convert_image_to_patches

from vlm.vision.base import VISION_ENCODERS
from vlm.vision.hf import HFViTEncoder


@VISION_ENCODERS.register("siglip2_vision_model")
class Siglip2Encoder(HFViTEncoder):
    prefix_tokens = 0
    examples = {"tiny-siglip2": {"vision": "tiny-siglip2"}}

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patch = self.config.vision_config.patch_size
        n, _, height, width = pixel_values.shape
        patches = torch.stack([convert_image_to_patches(image, patch) for image in pixel_values])
        shapes = torch.tensor([[height // patch, width // patch]] * n, device=pixel_values.device)
        mask = torch.ones(patches.shape[:2], dtype=torch.int32, device=pixel_values.device)
        out = self.model(pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=shapes,
                         output_hidden_states=True, return_dict=True)
        return torch.cat([out.hidden_states[i] for i in self.config.feature_layers], dim=-1)
