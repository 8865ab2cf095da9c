"""Safe image loading: any mode to RGB, EXIF orientation, a decompression-bomb limit, and
clear errors (or counted skips) for truncated, corrupt or missing files."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, ImageOps

from finevl.errors import FinevlError

logger = logging.getLogger(__name__)

MAX_PIXELS = 64_000_000  # 8k x 8k: larger images are refused before they are decoded
OnBadImage = Literal["error", "skip"]


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = (
            (0.0, 65535.0) if img.mode.startswith("I;16") else (arr.min(), max(arr.max(), arr.min() + 1e-9))
        )
        arr = np.clip((arr - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(
    source: str | Path | BinaryIO, name: str | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Open an image as upright 8-bit RGB; raise `FinevlError` naming the file if it can't.

    Palette, CMYK, grey+alpha and 16-bit images are converted; transparency is composited on
    white; images over `max_pixels` are refused before decoding.
    """
    label = name or str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            if img.width * img.height > max_pixels:
                raise FinevlError(
                    f"{label}: image is {img.width}x{img.height}, over the {max_pixels:,}-pixel limit"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except FinevlError:
        raise
    except FileNotFoundError:
        raise FinevlError(f"{label}: image file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FinevlError(f"{label}: refused as a decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise FinevlError(f"{label}: truncated or corrupt image ({e})") from None


@dataclass
class ImageLoader:
    """`load_image` under a policy: 'error' raises, 'skip' returns None and counts the skip."""

    on_bad_image: OnBadImage = "error"
    max_pixels: int = MAX_PIXELS
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_bad_image not in ("error", "skip"):
            raise FinevlError(f"--on-bad-image must be 'error' or 'skip', not {self.on_bad_image!r}")

    def __call__(self, source: str | Path | BinaryIO, name: str | None = None) -> Image.Image | None:
        try:
            return load_image(source, name=name, max_pixels=self.max_pixels)
        except FinevlError as e:
            if self.on_bad_image == "error":
                raise
            logger.warning("skipping %s", e)
            self.skipped.append(str(e))
            return None


class ImageCache:
    """Images under a root folder, each loaded once (`load_image`: one clear error per bad file)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._images: dict[str, Image.Image] = {}

    def __call__(self, name: str) -> Image.Image:
        if name not in self._images:
            self._images[name] = load_image(self.root / name, name=name)
        return self._images[name]


def model_array(image: Image.Image, side: int, crop: bool = True) -> np.ndarray:
    """(side, side, 3) uint8 pixels of an RGB image for a model that reads `side` px: the
    shorter side resized and the centre cropped, as CLIP's processors do (`crop`), or the
    whole image resized to a square, so masks drawn on it stay aligned (region models).
    `Clip.normalize_pixels` turns a batch of them into model input."""
    w, h = image.size
    if (w, h) == (side, side):
        return np.asarray(image, dtype=np.uint8)
    if not crop:
        return np.asarray(image.resize((side, side), Image.BICUBIC))
    scale = side / min(w, h)
    if scale != 1:
        image = image.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BICUBIC)
        w, h = image.size
    left, top = (w - side) // 2, (h - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)), dtype=np.uint8)
