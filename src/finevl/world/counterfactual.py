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
from finevl.world.scene import Scene, sample_scene
from finevl.world.shapes import painted_mask

EDITABLE = ("color", "pattern", "size", "background")


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


def counterfactual_image(world: str | Path, image_id: int, k: int, kind: str, value: str) -> np.ndarray:
    """(size, size, 3) uint8: the world's image with one attribute changed."""
    return render_scene(with_attribute(world_scene(world, image_id), k, kind, value))
