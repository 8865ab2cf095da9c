"""Safe image loading: every common mode to RGB, orientation, bombs, broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from finevl.data.images import ImageLoader, load_image
from finevl.errors import FinevlError


def _save(img: Image.Image, path, fmt="PNG", **kw):
    img.save(path, format=fmt, **kw)
    return path


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(img, tmp_path / "r.jpg", "JPEG", exif=exif.tobytes())
    assert load_image(path).size == (20, 40)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("P", (8, 8), 3),
        lambda: Image.new("CMYK", (8, 8), (0, 255, 255, 0)),
        lambda: Image.new("LA", (8, 8), (128, 255)),
        lambda: Image.new("RGBA", (8, 8), (0, 0, 255, 0)),
        lambda: Image.fromarray(np.full((8, 8), 65535, np.uint16)),
        lambda: Image.new("1", (8, 8), 1),
    ],
    ids=["palette", "cmyk", "la", "rgba", "16bit", "bilevel"],
)
def test_any_mode_becomes_8bit_rgb(tmp_path, make):
    src = make()
    fmt = "JPEG" if src.mode == "CMYK" else "TIFF" if src.mode == "I;16" else "PNG"
    out = load_image(_save(src, tmp_path / f"x.{fmt.lower()}", fmt))
    assert out.mode == "RGB" and out.size == (8, 8)


def test_transparency_is_composited_on_white_and_16bit_is_scaled(tmp_path):
    clear = load_image(_save(Image.new("RGBA", (4, 4), (0, 0, 255, 0)), tmp_path / "a.png"))
    assert clear.getpixel((0, 0)) == (255, 255, 255)
    grey16 = Image.fromarray(np.full((4, 4), 32768, np.uint16))
    assert load_image(_save(grey16, tmp_path / "g.tif", "TIFF")).getpixel((0, 0)) == (128, 128, 128)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = _save(Image.new("RGB", (300, 300)), tmp_path / "big.png")
    with pytest.raises(FinevlError, match="pixel limit"):
        load_image(path, max_pixels=10_000)


def test_truncated_corrupt_and_missing_files_name_the_file(tmp_path):
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, format="PNG")
    (tmp_path / "trunc.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name in ("trunc.png", "junk.png"):
        with pytest.raises(FinevlError, match=f"{name}: truncated or corrupt"):
            load_image(tmp_path / name)
    with pytest.raises(FinevlError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_loader_skips_and_counts_when_asked(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    good = _save(Image.new("RGB", (4, 4)), tmp_path / "ok.png")
    loader = ImageLoader("skip")
    assert loader(tmp_path / "junk.png") is None
    assert loader(good) is not None
    assert len(loader.skipped) == 1 and "junk.png" in loader.skipped[0]
    with pytest.raises(FinevlError):
        ImageLoader("error")(tmp_path / "junk.png")
    with pytest.raises(FinevlError, match="on-bad-image"):
        ImageLoader("ignore")  # type: ignore[arg-type]
