"""Image loading: every bad input becomes a specific BadSample; every odd mode becomes correct RGB."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vlm.data.errors import BadSample
from vlm.data.images import load_image


def _kind(relative, root):
    with pytest.raises(BadSample) as info:
        load_image(relative, root, "s1")
    assert info.value.sample_id == "s1"
    return info.value.kind.value


def test_bad_inputs_have_specific_kinds(tmp_path):
    Image.new("RGB", (32, 32), "red").save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp_path / "link.png").symlink_to("/etc/hostname")
    assert _kind("missing.png", tmp_path) == "missing_image"
    assert _kind("truncated.png", tmp_path) == "corrupt_image"
    assert _kind("noise.jpg", tmp_path) == "corrupt_image"
    assert _kind("../../etc/passwd", tmp_path) == "path_escape"
    assert _kind("/etc/passwd", tmp_path) == "path_escape"
    assert _kind("link.png", tmp_path) == "path_escape"


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    """A PNG whose header claims 100000x100000 pixels; nothing that large is ever allocated."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "bomb.png").write_bytes(png)
    assert _kind("bomb.png", tmp_path) == "oversized_image"


def test_modes_and_orientation_become_correct_rgb(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red -> white
    rgba.save(tmp_path / "rgba.png")
    Image.new("LA", (4, 4), (0, 0)).save(tmp_path / "la.png")
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red in CMYK
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(tmp_path / "i16.png")
    Image.new("RGB", (4, 4), (0, 0, 255)).convert("P").save(tmp_path / "p.png")
    wide = Image.new("RGB", (40, 20), "green")
    exif = wide.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    wide.save(tmp_path / "rotated.jpg", exif=exif)
    pixel = {
        name: load_image(name, tmp_path, "s").getpixel((0, 0))
        for name in ["rgba.png", "la.png", "cmyk.jpg", "i16.png", "p.png"]
    }
    assert pixel["rgba.png"] == (255, 255, 255)
    assert pixel["la.png"] == (255, 255, 255)
    assert pixel["cmyk.jpg"][0] > 200 and max(pixel["cmyk.jpg"][1:]) < 60
    assert pixel["i16.png"] == (128, 128, 128)  # scaled from 16 bits (clipping would give 255)
    assert pixel["p.png"] == (0, 0, 255)
    assert load_image("rotated.jpg", tmp_path, "s").size == (20, 40)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    (tmp_path / "anim.gif").write_bytes(buffer.getvalue())
    r, g, b = load_image("anim.gif", tmp_path, "s").getpixel((0, 0))
    assert r > 200 and b < 60
