"""Loading one image safely: inside its root, fully decoded, size-checked, upright, RGB."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vlm.data.errors import BadSample, BadSampleKind

MAX_PIXELS = 64_000_000


def resolve_in_root(relative: str, root: Path, sample_id: str) -> Path:
    """``root / relative`` if it stays inside ``root`` (after symlinks); absolute paths are refused."""
    if Path(relative).is_absolute():
        raise BadSample(BadSampleKind.PATH_ESCAPE, sample_id, f"absolute image path {relative!r}")
    root = root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise BadSample(BadSampleKind.PATH_ESCAPE, sample_id, f"{relative!r} resolves outside {root}")
    return path


def load_image(relative: str, root: Path, sample_id: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An RGB image, or `BadSample` saying why not (escape, missing, oversized, corrupt)."""
    path = resolve_in_root(relative, root, sample_id)
    if not path.is_file():
        raise BadSample(BadSampleKind.MISSING_IMAGE, sample_id, f"{relative!r} not found under {root}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > max_pixels:  # header only: nothing decoded yet
                    raise BadSample(
                        BadSampleKind.OVERSIZED_IMAGE,
                        sample_id,
                        f"{relative!r} is {image.width}x{image.height}, over {max_pixels:,} pixels",
                    )
                image.seek(0)  # first frame of an animation
                image.load()
                return to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadSample(BadSampleKind.OVERSIZED_IMAGE, sample_id, f"{relative!r}: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadSample(BadSampleKind.CORRUPT_IMAGE, sample_id, f"{relative!r}: {err}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: transparency composited on white, 16-bit scaled (not clipped) to 8-bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.round(array * 255.0 / peak).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info or image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")
