"""Counterfactual scenes: a world image re-drawn by the world's own renderer with one
attribute changed (an object's colour, pattern or size, or the background). The editing
benchmark's oracle: the exact edit its judges should recognise."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from finevl.data.jsonio import read_json
from finevl.errors import FinevlError
from finevl.world import vocab
from finevl.world.annotate import scene_rng
from finevl.world.config import WorldConfig
from finevl.world.render import render_scene
from finevl.world.scene import Scene, pattern_shows, sample_scene
from finevl.world.shapes import painted_mask, shape_mask

EDITABLE = {
    "color": vocab.COLORS,
    "pattern": vocab.PATTERNS,
    "size": vocab.SIZES,
    "background": vocab.BACKGROUNDS,
}


def world_scene(world: str | Path, image_id: int) -> Scene:
    """Image `image_id` of a generated world, sampled again from the world's seed."""
    config = WorldConfig(**read_json(Path(world) / "world.json")["config"])
    return sample_scene(scene_rng(config.seed, image_id), config.size, **config.scene_options())


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


def new_values(scene: Scene, k: int, kind: str) -> list[str]:
    """The other values `kind` can take so that the re-drawn scene shows it truly: a
    pattern or size at which object k's pattern would not show (a small dotted shape at
    64 px) is left out, as the world itself never draws one."""
    current = scene.background if kind == "background" else getattr(scene.objects[k], kind)
    values = [v for v in EDITABLE[kind] if v != current]
    if kind in ("pattern", "size"):
        values = [v for v in values if _pattern_shows(with_attribute(scene, k, kind, v), k)]
    return values


def counterfactual_image(world: str | Path, image_id: int, k: int, kind: str, value: str) -> np.ndarray:
    """(size, size, 3) uint8: the world's image with one attribute changed."""
    return render_scene(with_attribute(world_scene(world, image_id), k, kind, value))
