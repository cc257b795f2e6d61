"""An encoder folder of any vision source kind, opened as a tower: its `VisionEncoder` returning every
last-block token (prefix first), its grid and patch size, the images the way a VLM prepares them,
and saving a trained copy back in the folder's own layout. Encoder-level stages and probes use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlm.config import VLMConfig
from vlm.processing import image_processor_from
from vlm.vision.base import VisionEncoder
from vlm.vision.encoder import encoder_class
from vlm.vision.sources import SOURCE_KINDS, VisionSource, folder_kind


@dataclass(frozen=True)
class Tower:
    """An encoder folder opened for MaskEmbed: its source kind, source and the config under which its
    `VisionEncoder` returns every last-block token, prefix first."""

    folder: Path
    kind: str
    source: VisionSource
    config: VLMConfig

    @classmethod
    def open(cls, folder: Path) -> Tower:
        folder = Path(folder)
        kind = folder_kind(folder)
        if SOURCE_KINDS.get(kind).save is None:
            raise ValueError(f"{folder} is a {kind} encoder, which cannot be saved back in its own format")
        source = SOURCE_KINDS.get(kind).folder(folder)
        config = VLMConfig(vision_config=source.config, vision_feature_layer=-1, vision_feature_select_strategy="full")
        return cls(folder, kind, source, config)

    def encoder(self) -> VisionEncoder:
        return encoder_class(self.config)(self.config, pretrained=self.source.weights)

    @property
    def side(self) -> int:
        """Patches per side at the tower's image size."""
        rows, cols = encoder_class(self.config).grid(self.config, self.config.image_size)
        if rows != cols or self.config.image_size % rows:
            raise ValueError(f"MaskEmbed masks square patches: {self.folder}'s {rows}x{cols} token grid does not "
                             f"tile its {self.config.image_size} px images")
        return rows

    @property
    def patch(self) -> int:
        """Pixels per patch side."""
        return self.config.image_size // self.side

    @property
    def prefix(self) -> int:
        return encoder_class(self.config).num_prefix_tokens(self.config)

    @property
    def width(self) -> int:
        return encoder_class(self.config).out_channels(self.config)

    def images(self) -> TowerImages:
        return TowerImages(image_processor_from(self.source.normalisation, self.config.image_size))

    def save(self, encoder: VisionEncoder, out: Path) -> None:
        SOURCE_KINDS.get(self.kind).save(encoder, self.folder, Path(out))


class TowerImages:
    """Images as the VLM prepares them (pad to square, the encoder's own mean/std). Saving writes nothing:
    the saved folder keeps its source's preprocessing files (`Tower.save`)."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, *args, **kwargs):
        return self.processor(*args, **kwargs)

    def save_pretrained(self, out: Path) -> None:
        pass
