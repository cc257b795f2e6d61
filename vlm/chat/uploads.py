"""User images for a chat: the training loader's checks (`vlm.data.images`), with messages for people."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from vlm.data.errors import BadSample, BadSampleKind
from vlm.data.images import MAX_PIXELS, load_image

FORMATS = "PNG, JPEG, GIF, WebP, BMP or TIFF"


class ChatInputError(ValueError):
    """Input the chat cannot use; its text is shown to the user as is."""


@dataclass
class Upload:
    """A checked image (RGB, upright, first frame) and what was done to it, if anything."""

    path: Path
    image: Image.Image
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Upload:
    """One uploaded file as an RGB image, or `ChatInputError` saying why it cannot be used."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ChatInputError(f"{name}: file not found.")
    if path.stat().st_size == 0:
        raise ChatInputError(f"{name} is empty (0 bytes).")
    try:
        image = load_image(path.name, path.parent, name, max_pixels)
    except BadSample as err:
        if err.kind is BadSampleKind.OVERSIZED_IMAGE:
            side = math.isqrt(max_pixels)
            raise ChatInputError(
                f"{name} is too large (over {max_pixels:,} pixels); please resize it to about "
                f"{side}x{side} or less."
            ) from None
        raise ChatInputError(f"{name} is not an image I can read (use {FORMATS}).") from None
    return Upload(path, image, _notes(path))


def _notes(path: Path) -> list[str]:
    """What the conversion to RGB changed (read from the header of a file already checked)."""
    with Image.open(path) as image:
        mode, frames = image.mode, getattr(image, "n_frames", 1)
    notes = []
    if frames > 1:
        notes.append(f"it is animated ({frames} frames): only the first frame is used")
    if mode == "CMYK":
        notes.append("converted from CMYK to RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        notes.append("16-bit image scaled to 8-bit RGB")
    return notes


def read_images(paths: Sequence[str | Path], max_pixels: int = MAX_PIXELS) -> tuple[list[Upload], list[str]]:
    """All files checked: the usable images and one message per file that is not."""
    uploads, problems = [], []
    for path in paths:
        try:
            uploads.append(read_image(path, max_pixels))
        except ChatInputError as err:
            problems.append(str(err))
    return uploads, problems
