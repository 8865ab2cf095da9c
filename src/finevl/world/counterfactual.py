"""Counterfactual scenes: a world image re-drawn by the world's own renderer with one
attribute changed (an object's colour, pattern or size, or the background). The editing
benchmark's oracle: the exact edit its judges should recognise."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from finevl.data.jsonio import read_json
from finevl.errors import FinevlError
from finevl.language import vocab
from finevl.language.scene import Scene
from finevl.world.annotate import scene_rng
from finevl.world.config import WorldConfig
from finevl.world.render import render_scene
from finevl.world.scene import pattern_shows, sample_scene
from finevl.world.shapes import painted_mask, shape_mask

EDITABLE = {
    "color": vocab.COLORS,
    "pattern": vocab.PATTERNS,
    "size": vocab.SIZES,
    "background": vocab.BACKGROUNDS,
}


@lru_cache(maxsize=8)
def _config(world: Path) -> WorldConfig:
    return WorldConfig(**read_json(world / "world.json")["config"])


def world_scene(world: str | Path, image_id: int) -> Scene:
    """Image `image_id` of a generated world, sampled again from the world's seed."""
    config = _config(Path(world).resolve())
    return sample_scene(scene_rng(config.seed, image_id), config.size, **config.scene_options())


def checked_scene(world: str | Path, image_id: int, attributes: list[dict]) -> Scene:
    """`world_scene`, checked against the image's stored annotations (in their order)."""
    scene = world_scene(world, image_id)
    drawn = [(o.color, o.size, o.pattern) for o in scene.objects]
    if drawn != [(a.get("color"), a.get("size"), a.get("pattern")) for a in attributes]:
        raise FinevlError(
            f"{world}: image {image_id} is not what its world.json seed draws (another world version?)"
        )
    return scene


def with_attribute(scene: Scene, k: int, kind: str, value: str) -> Scene:
    """The scene with object k's `kind` (or the background) set to `value`; a new size
    scales the object's radius about its centre, a new pattern re-draws its outline."""
    if kind not in EDITABLE:
        raise FinevlError(f"cannot change {kind!r}: one of {', '.join(EDITABLE)}")
    if kind == "background":
        return replace(scene, background=value)
    obj = scene.objects[k]
    new = replace(obj, **{kind: value})
    if kind == "size":
        new = replace(new, radius=obj.radius * vocab.SIZE_RADIUS[value] / vocab.SIZE_RADIUS[obj.size])
    painted = list(scene.painted)
    painted[k] = painted_mask(new.shape, new.cx, new.cy, new.radius, scene.size, new.pattern == "outlined")
    objects = list(scene.objects)
    objects[k] = new
    return replace(scene, objects=objects, painted=painted)


def silhouette(scene: Scene, k: int) -> np.ndarray:
    """Object k's filled shape less what objects in front of it cover: the region its
    colour and pattern are read from (an outlined shape's hole included, so a judge sees
    whether the hole is still there)."""
    obj = scene.objects[k]
    mask = shape_mask(obj.shape, obj.cx, obj.cy, obj.radius, scene.size)
    for j in scene.depth[scene.depth.index(k) + 1 :]:
        mask &= ~scene.painted[j]
    return mask


def _pattern_shows(scene: Scene, k: int) -> bool:
    obj = scene.objects[k]
    full = shape_mask(obj.shape, obj.cx, obj.cy, obj.radius, scene.size)
    return pattern_shows(obj.pattern, full, scene.painted[k], scene.size)


def _drawable(scene: Scene, k: int, kind: str, value: str) -> bool:
    """Whether the world itself could draw the scene with this change (scene.py's rules)."""
    obj, others = scene.objects[k], [o for j, o in enumerate(scene.objects) if j != k]
    if kind == "background":
        return all(o.color not in vocab.LOW_CONTRAST[value] for o in scene.objects)
    if kind == "color":  # contrast with the background; names stay unique
        return value not in vocab.LOW_CONTRAST[scene.background] and all(
            (o.color, o.shape) != (value, obj.shape) for o in others
        )
    changed = with_attribute(scene, k, kind, value)
    if not _pattern_shows(changed, k):  # a small dotted shape at 64 px shows no dots
        return False
    if kind == "size":  # inside the image, and touching no object it did not touch before
        new = changed.objects[k]
        if not (
            new.radius <= new.cx <= scene.size - new.radius
            and new.radius <= new.cy <= scene.size - new.radius
        ):
            return False
        for o in others:
            gap = math.hypot(o.cx - obj.cx, o.cy - obj.cy) - o.radius - 2
            if gap >= obj.radius and gap < new.radius:
                return False
    return True


def new_values(scene: Scene, k: int, kind: str) -> list[str]:
    """The other values `kind` can take that the world itself could draw there (`_drawable`),
    so a re-drawn scene is one the world might have made."""
    current = scene.background if kind == "background" else getattr(scene.objects[k], kind)
    return [v for v in EDITABLE[kind] if v != current and _drawable(scene, k, kind, v)]


def growth_region(scene: Scene, k: int) -> np.ndarray:
    """Where a size edit of object k may act: its silhouette at every size, one pixel wider."""
    region = np.any([silhouette(with_attribute(scene, k, "size", v), k) for v in vocab.SIZES], axis=0)
    grown = region.copy()
    grown[1:] |= region[:-1]
    grown[:-1] |= region[1:]
    grown[:, 1:] |= region[:, :-1]
    grown[:, :-1] |= region[:, 1:]
    return grown


def counterfactual_image(world: str | Path, image_id: int, k: int, kind: str, value: str) -> np.ndarray:
    """(size, size, 3) uint8: the world's image with one attribute changed."""
    return render_scene(with_attribute(world_scene(world, image_id), k, kind, value))
