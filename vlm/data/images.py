"""Loading one image safely: inside its root, fully decoded, size-checked, upright, RGB."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vlm.data.errors import BadSample, BadSampleKind

MAX_PIXELS = 64_000_000
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def resolve_in_root(relative: str, root: Path, sample_id: str) -> Path:
    """``root / relative`` if it stays inside ``root`` (after symlinks); absolute paths are refused."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise BadSample(BadSampleKind.MALFORMED_RECORD, sample_id, f"bad image path {relative!r}")
    if Path(relative).is_absolute():
        raise BadSample(BadSampleKind.PATH_ESCAPE, sample_id, f"absolute image path {relative!r}")
    root = Path(root).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise BadSample(BadSampleKind.PATH_ESCAPE, sample_id, f"{relative!r} resolves outside {root}")
    return path


def load_image(relative: str, root: Path, sample_id: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An RGB image, or `BadSample` saying why not (escape, missing, oversized, corrupt)."""
    path = resolve_in_root(relative, root, sample_id)
    if not path.is_file():
        raise BadSample(BadSampleKind.MISSING_IMAGE, sample_id, f"{relative!r} not found under {root}")
    return _decode(lambda: Image.open(path), relative, sample_id, max_pixels)


def image_from_bytes(data: bytes, sample_id: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Like `load_image`, for encoded image bytes (a parquet/arrow ``image`` cell)."""
    return _decode(lambda: Image.open(io.BytesIO(data)), "<bytes>", sample_id, max_pixels)


def check_image(image: Image.Image, sample_id: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Like `load_image`, for an already opened (possibly lazily decoded) PIL image."""
    return _decode(lambda: image, "<image>", sample_id, max_pixels)


def _decode(open_image: Callable[[], Image.Image], name: str, sample_id: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # our header check below is the limit; Pillow's hard limit (DecompressionBombError) stays
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image() as image:
                if image.width * image.height > max_pixels:  # header only: nothing decoded yet
                    raise BadSample(
                        BadSampleKind.OVERSIZED_IMAGE,
                        sample_id,
                        f"{name!r} is {image.width}x{image.height}, over {max_pixels:,} pixels",
                    )
                image.seek(0)  # first frame of an animation
                image.load()
                return to_rgb(_upright(image))
    except Image.DecompressionBombError as err:
        raise BadSample(BadSampleKind.OVERSIZED_IMAGE, sample_id, f"{name!r}: {err}") from None
    except _DECODE_ERRORS as err:
        raise BadSample(BadSampleKind.CORRUPT_IMAGE, sample_id, f"{name!r}: {err}") from None


def _upright(image: Image.Image) -> Image.Image:
    """EXIF orientation applied; broken EXIF metadata leaves the (good) pixels as they are."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - EXIF parsing raises many types; the pixels are already decoded
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: transparency composited on white, 16-bit scaled (not clipped) to 8-bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.round(array * 255.0 / peak).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info or image.mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")
