"""Rendering: textured backgrounds (a bank made once per image size) and scene painting."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from finevl.language import vocab
from finevl.language.scene import Scene
from finevl.world.shapes import accent_grids

RGB: dict[str, tuple[int, int, int]] = {  # each colour word as painted
    "red": (215, 40, 40),
    "orange": (245, 140, 25),
    "yellow": (240, 215, 35),
    "green": (40, 165, 60),
    "blue": (40, 85, 215),
    "purple": (135, 55, 185),
    "pink": (245, 130, 190),
    "brown": (125, 75, 35),
    "white": (248, 248, 248),
    "black": (22, 22, 22),
}

BASE_RGB = {
    "snow": (232, 238, 248),
    "grass": (72, 138, 52),
    "sea": (28, 88, 158),
    "sand": (222, 198, 150),
    "night": (14, 18, 44),
    "brick": (158, 62, 46),
    "wood": (150, 102, 60),
    "sky": (140, 192, 238),
}
DARK_BACKGROUNDS = {"sea", "night", "brick", "wood", "grass"}


def _smooth_noise(rng: np.random.Generator, side: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((side, side), Image.BILINEAR))


def _texture(kind: str, side: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    base = np.array(BASE_RGB[kind], np.float32)
    fine = rng.normal(0, 1, (side, side)).astype(np.float32)
    soft = _smooth_noise(rng, side, 6)
    shade = np.zeros((side, side), np.float32)
    tint = np.zeros((side, side, 3), np.float32)
    if kind == "snow":
        shade = 5 * fine + 8 * soft
        tint[rng.random((side, side)) < 0.01] = 20
    elif kind == "grass":
        blades = np.repeat(rng.normal(0, 1, (side // 5 + 1, side)), 5, axis=0)[:side]
        shade = 22 * blades.astype(np.float32) + 10 * soft
    elif kind == "sea":
        period = side / rng.uniform(5, 8)
        shade = 18 * np.sin(2 * np.pi * yy / period + 2.5 * np.sin(xx / side * 6)) + 6 * fine
    elif kind == "sand":
        shade = 9 * fine + 10 * np.sin((xx + 0.6 * yy) / side * 40 + 4 * soft)
    elif kind == "night":
        shade = 4 * soft
        tint[rng.random((side, side)) < 0.012] = 200
    elif kind == "brick":
        rows = np.floor(yy / max(4, side // 12))
        cols = np.floor((xx + (rows % 2) * max(4, side // 12)) / max(8, side // 6))
        per_brick = rng.normal(0, 12, 4096).astype(np.float32)
        shade = per_brick[((rows * 61 + cols * 7) % 4096).astype(int)] + 5 * fine
        mortar = (yy % max(4, side // 12) < 1) | (
            (xx + (rows % 2) * max(4, side // 12)) % max(8, side // 6) < 1
        )
        tint[mortar] = np.array((200, 190, 180), np.float32) - base
    elif kind == "wood":
        shade = 22 * np.sin(xx / side * 30 + 6 * soft) + 6 * fine
    elif kind == "sky":
        shade = -25 * yy / side + 4 * fine
        clouds = np.clip(_smooth_noise(rng, side, 5) * 2 - 0.6, 0, 1)
        tint = clouds[..., None] * (np.array((250, 250, 252), np.float32) - base)
    rgb = base + shade[..., None] + tint
    return np.clip(rgb, 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def texture_bank(size: int, variants: int = 8) -> dict[str, list[np.ndarray]]:
    """Per background, `variants` textures of side 2*size; a scene crops one at an offset.

    The bank is a constant of the world (seeded by kind and size only), so any process
    rebuilds exactly the same one.
    """
    bank = {}
    for k, kind in enumerate(vocab.BACKGROUNDS):
        bank[kind] = [_texture(kind, 2 * size, np.random.default_rng([size, k, v])) for v in range(variants)]
    return bank


def _accent(rgb: np.ndarray) -> np.ndarray:
    """A darker shade for light colours and a lighter one for dark colours."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return rgb * 0.5 if luma > 110 else rgb * 0.45 + 140


def render_scene(scene: Scene) -> np.ndarray:
    """Paint a sampled scene: (size, size, 3) uint8 RGB."""
    size = scene.size
    variant, ox, oy, gain = scene.texture
    crop = texture_bank(size)[scene.background][variant][oy : oy + size, ox : ox + size]
    canvas = np.clip(crop * gain, 0, 255).astype(np.uint8)
    grids = accent_grids(size)
    for k in scene.depth:
        obj, painted = scene.objects[k], scene.painted[k]
        rgb = np.array(RGB[obj.color], np.float32)
        canvas[painted] = rgb.astype(np.uint8)
        if obj.pattern in grids:
            canvas[painted & grids[obj.pattern]] = _accent(rgb).astype(np.uint8)
    if scene.text_mask is not None:
        canvas[scene.text_mask] = 250 if scene.background in DARK_BACKGROUNDS else 10
    return canvas
