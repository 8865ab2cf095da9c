"""Shape outlines and their rasterisation to boolean masks (PIL draws, numpy holds)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [
        (radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    outer = _regular(points)
    inner_pts = _regular(points, inner, phase=-math.pi / 2 + math.pi / points)
    return [p for pair in zip(outer, inner_pts, strict=True) for p in pair]


def _heart(n: int = 40) -> list[tuple[float, float]]:
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 16.5, -(y + 2.5) / 15.5))
    return pts


_ARM = 0.34
# Unit outlines inscribed in the unit circle, image y pointing down. None draws an ellipse.
OUTLINES: dict[str, list[tuple[float, float]] | None] = {
    "circle": None,
    "square": [(-0.78, -0.78), (0.78, -0.78), (0.78, 0.78), (-0.78, 0.78)],
    "triangle": [(0.0, -1.0), (0.92, 0.72), (-0.92, 0.72)],
    "star": _star(),
    "diamond": [(0.0, -1.0), (0.72, 0.0), (0.0, 1.0), (-0.72, 0.0)],
    "hexagon": _regular(6, phase=0.0),
    "cross": [
        (-_ARM, -1),
        (_ARM, -1),
        (_ARM, -_ARM),
        (1, -_ARM),
        (1, _ARM),
        (_ARM, _ARM),
        (_ARM, 1),
        (-_ARM, 1),
        (-_ARM, _ARM),
        (-1, _ARM),
        (-1, -_ARM),
        (-_ARM, -_ARM),
    ],
    "heart": _heart(),
}


def shape_mask(shape: str, cx: float, cy: float, radius: float, size: int) -> np.ndarray:
    """Boolean (size, size) mask of `shape` centred at (cx, cy) with circumradius `radius`."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    outline = OUTLINES[shape]
    if outline is None:
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=1)
    else:
        draw.polygon([(cx + radius * x, cy + radius * y) for x, y in outline], fill=1)
    return np.asarray(canvas, dtype=bool)


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Pixels whose whole (2r+1)^2 neighbourhood lies in `mask`: box sums via cumsums."""
    k = 2 * r + 1
    padded = np.pad(mask, r + 1).astype(np.int32)
    rows = np.cumsum(padded, axis=0)
    rows = rows[k:] - rows[:-k]  # (H+1, W+2r+2): vertical window sums
    cols = np.cumsum(rows, axis=1)
    window = cols[:, k:] - cols[:, :-k]  # (H+1, W+1)
    return window[:-1, :-1] == k * k


def painted_mask(shape: str, cx: float, cy: float, radius: float, size: int, hollow: bool) -> np.ndarray:
    """Pixels an object paints: the whole shape, or, when `hollow`, a rim of even width."""
    full = shape_mask(shape, cx, cy, radius, size)
    if not hollow:
        return full
    return full & ~erode(full, max(1, round(0.22 * radius)))


@lru_cache(maxsize=8)
def accent_grids(size: int) -> dict[str, np.ndarray]:
    """Where a striped or dotted object shows its accent shade, for an image of `size`."""
    yy, xx = np.mgrid[0:size, 0:size]
    period = max(4, size // 16)
    stripes = ((xx + yy) % period) < period // 2
    dot_period = max(5, size // 12)
    dy = (yy % dot_period) - dot_period / 2 + 0.5
    dx = (xx % dot_period) - dot_period / 2 + 0.5
    dots = dx * dx + dy * dy <= (dot_period / 4.5) ** 2
    return {"striped": stripes, "dotted": dots}
