"""Scene sampling: what is in an image, drawn with exact geometry (masks, occlusion,
relations); the scene record itself is `finevl.language.scene`. Sampling draws the layout
and checks it with the masks it will be rendered with, so every stated fact is true of the
pixels: each object keeps at least half of its pixels visible, any two objects either do not
touch or clearly overlap, and every pair's spatial relation is unambiguous.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from finevl.language import vocab
from finevl.language.scene import Scene, SceneObject
from finevl.world.shapes import accent_grids, painted_mask, shape_mask

MIN_VISIBLE = 0.5  # share of an object's own pixels that stay visible
MIN_OCCLUSION = 0.04  # an overlap smaller than this share of the smaller object is a touch
MIN_AXIS_RATIO = 1.3  # dominant axis at least this much longer than the other


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def _text_mask(text: str, x: int, y: int, size: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).text((x, y), text, fill=255, font=_font(max(9, size // 8)))
    return np.asarray(canvas) > 127


def _sample_attributes(rng: random.Random, n: int, background: str) -> list[tuple[str, str, str, str]]:
    colors = [c for c in vocab.COLORS if c not in vocab.LOW_CONTRAST[background]]
    seen: set[tuple[str, str]] = set()
    attrs = []
    while len(attrs) < n:
        color, shape = rng.choice(colors), rng.choice(list(vocab.SHAPES))
        if (color, shape) in seen:
            continue
        seen.add((color, shape))
        attrs.append((shape, color, rng.choice(list(vocab.SIZES)), rng.choice(list(vocab.PATTERNS))))
    return attrs


def _place(rng: random.Random, attrs, size: int, overlap: bool) -> list[SceneObject] | None:
    objs: list[SceneObject] = []
    for k, (shape, color, sz, pattern) in enumerate(attrs):
        r = vocab.SIZE_RADIUS[sz] * size * rng.uniform(0.93, 1.07)
        if overlap and k == 1:
            a = objs[0]
            angle = rng.uniform(0, 2 * math.pi)
            dist = rng.uniform(0.55, 0.85) * (a.radius + r)
            cx, cy = a.cx + dist * math.cos(angle), a.cy + dist * math.sin(angle)
            if not (r <= cx <= size - r and r <= cy <= size - r):
                return None
        else:
            cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
            if any(math.hypot(cx - o.cx, cy - o.cy) < o.radius + r + 2 for o in objs):
                return None
        objs.append(SceneObject(shape, color, sz, pattern, cx, cy, r))
    return objs


def _clear_axes(objs: list[SceneObject]) -> bool:
    for i, a in enumerate(objs):
        for b in objs[i + 1 :]:
            dx, dy = sorted((abs(b.cx - a.cx), abs(b.cy - a.cy)))
            if dy < MIN_AXIS_RATIO * dx:
                return False
    return True


def _occlusion(painted: list[np.ndarray], depth: list[int]) -> frozenset[tuple[int, int]] | None:
    """Pairs (front, back) that clearly overlap; None when a pair merely touches."""
    occ = set()
    rank = {obj: d for d, obj in enumerate(depth)}
    for i in range(len(painted)):
        for j in range(i + 1, len(painted)):
            inter = np.count_nonzero(painted[i] & painted[j])
            if inter == 0:
                continue
            if inter < MIN_OCCLUSION * min(painted[i].sum(), painted[j].sum()):
                return None
            occ.add((i, j) if rank[i] > rank[j] else (j, i))
    return frozenset(occ)


def _visible(painted: list[np.ndarray], depth: list[int], size: int) -> list[np.ndarray] | None:
    owner = np.full((size, size), -1, dtype=np.int8)
    for k in depth:
        owner[painted[k]] = k
    visible = [owner == k for k in range(len(painted))]
    if any(v.sum() < MIN_VISIBLE * p.sum() for v, p in zip(visible, painted, strict=True)):
        return None
    return visible


def pattern_shows(pattern: str, full: np.ndarray, painted: np.ndarray, size: int) -> bool:
    """Whether a pattern shows at this object's pixel size: a real hole, real stripes/dots."""
    area = int(painted.sum())
    if pattern == "outlined":
        return int(full.sum()) - area >= max(4, 0.1 * full.sum())
    if pattern in ("striped", "dotted"):
        accent = int((painted & accent_grids(size)[pattern]).sum())
        return (
            accent >= max(3, (0.2 if pattern == "striped" else 0.05) * area) and area - accent >= 0.2 * area
        )
    return True


def _paint(
    rng: random.Random, objs: list[SceneObject], size: int
) -> tuple[list[SceneObject], list[np.ndarray]]:
    """Each object's painted pixels; a pattern too small to see at its size is redrawn
    (from the patterns that do show, solid last), so a stated pattern is always visible."""
    out, painted = [], []
    for obj in objs:
        full = shape_mask(obj.shape, obj.cx, obj.cy, obj.radius, size)
        choices = [obj.pattern] + rng.sample(
            [p for p in vocab.PATTERNS if p not in (obj.pattern, "solid")], 2
        )
        for pattern in [*choices, "solid"]:
            mask = painted_mask(obj.shape, obj.cx, obj.cy, obj.radius, size, pattern == "outlined")
            if pattern_shows(pattern, full, mask, size):
                break
        out.append(replace(obj, pattern=pattern))
        painted.append(mask)
    return out, painted


def _add_text(rng: random.Random, scene: Scene) -> None:
    text = rng.choice(vocab.TEXTS)
    size = scene.size
    px = max(9, size // 8)
    width = int(_font(px).getlength(text)) + 1
    if width >= size - 2:
        return
    occupied = np.zeros((size, size), dtype=bool)
    for p in scene.painted:
        occupied |= p
    for _ in range(8):
        x, y = rng.randint(1, size - width - 1), rng.randint(0, size - px - 3)
        mask = _text_mask(text, x, y, size)
        if mask.any() and not (mask & occupied).any():
            scene.text, scene.text_box, scene.text_mask = text, (x, y), mask
            return


def sample_scene(
    rng: random.Random,
    size: int = 96,
    *,
    max_objects: int = 4,
    overlap_prob: float = 0.3,
    text_prob: float = 0.25,
    texture_variants: int = 8,
) -> Scene:
    """Draw one scene: background, 1..max_objects objects, optional text, exact masks.

    >>> scene = sample_scene(random.Random(0))
    >>> 1 <= len(scene.objects) <= 4
    True
    """
    background = rng.choice(list(vocab.BACKGROUNDS))
    n = rng.choices(range(1, max_objects + 1), weights=[1.0, 2.0, 2.0, 1.6][:max_objects])[0]
    overlap = n >= 2 and rng.random() < overlap_prob
    attrs = _sample_attributes(rng, n, background)
    for attempt in range(200):
        if attempt and attempt % 40 == 0 and len(attrs) > 1:
            attrs = attrs[:-1]  # a crowded layout keeps failing: drop one object
            overlap = overlap and len(attrs) >= 2
        objs = _place(rng, attrs, size, overlap)
        if objs is None or not _clear_axes(objs):
            continue
        depth = list(range(len(objs)))
        rng.shuffle(depth)
        objs, painted = _paint(rng, objs, size)
        occ = _occlusion(painted, depth)
        if occ is None or (overlap and not occ):
            continue
        visible = _visible(painted, depth, size)
        if visible is not None:
            break
    else:  # pragma: no cover - a single object always fits
        raise RuntimeError("could not place a scene")
    order = sorted(range(len(objs)), key=lambda k: (-objs[k].radius, objs[k].cx))
    remap = {old: new for new, old in enumerate(order)}
    scene = Scene(
        size=size,
        background=background,
        objects=[objs[k] for k in order],
        depth=[remap[k] for k in depth],
        texture=(
            rng.randrange(texture_variants),
            rng.randrange(size),
            rng.randrange(size),
            rng.uniform(0.9, 1.1),
        ),
        occludes=frozenset((remap[i], remap[j]) for i, j in occ),
        painted=[painted[k] for k in order],
        visible=[visible[k] for k in order],
    )
    # Text only beside at most three objects, so the fine caption fits CLIP's context.
    if rng.random() < text_prob and len(scene.objects) <= 3:
        _add_text(rng, scene)
    return scene
