"""Counterfactual scenes: the world's image is re-drawn exactly, and one changed attribute
changes only that object's pixels (or only the background's)."""

from __future__ import annotations

import numpy as np
import pytest

from finevl.data.coco import CocoInstances
from finevl.data.images import load_image
from finevl.errors import FinevlError
from finevl.language import vocab
from finevl.world.counterfactual import (
    checked_scene,
    counterfactual_image,
    growth_region,
    new_values,
    silhouette,
    with_attribute,
    world_scene,
)
from finevl.world.render import render_scene


def _first(world):
    instances = CocoInstances(world / "instances.json")
    image_id = min(instances.images)
    return image_id, instances, np.array(load_image(world / "images" / instances.images[image_id].file_name))


def test_every_unchanged_scene_is_its_stored_image(world):
    instances = CocoInstances(world / "instances.json")
    for image_id, img in sorted(instances.images.items())[:20]:
        stored = np.array(load_image(world / "images" / img.file_name))
        assert (render_scene(world_scene(world, image_id)) == stored).all()
    attrs = [a.attributes for a in instances.annotations[0]]
    with pytest.raises(FinevlError, match="not what its world.json seed draws"):
        checked_scene(world, 0, attrs[::-1] + [{"color": "none"}])


def test_a_size_edit_stays_in_its_growth_region(world):
    image_id, _, stored = _first(world)
    scene = world_scene(world, image_id)
    region = growth_region(scene, 0)
    for size in vocab.SIZES:
        changed = (counterfactual_image(world, image_id, 0, "size", size) != stored).any(-1)
        assert not (changed & ~region).any()


@pytest.mark.parametrize("kind", ["color", "pattern", "background"])
def test_a_changed_attribute_changes_only_its_own_pixels(world, kind):
    image_id, instances, stored = _first(world)
    masks = [instances.mask(a) for a in instances.annotations[image_id]]
    scene = world_scene(world, image_id)
    old = scene.background if kind == "background" else getattr(scene.objects[0], kind)
    new = next(
        v
        for v in {"color": vocab.COLORS, "pattern": vocab.PATTERNS, "background": vocab.BACKGROUNDS}[kind]
        if v != old
    )
    changed = (counterfactual_image(world, image_id, 0, kind, new) != stored).any(-1)
    allowed = ~np.any(masks, axis=0)  # the background, its text included
    if kind != "background":  # the object's visible pixels and, for a pattern, its new outline
        allowed = masks[0] | with_attribute(scene, 0, kind, new).painted[0]
    assert changed.any() and not (changed & ~allowed).any()


def test_a_new_size_scales_the_radius_and_an_unknown_kind_is_refused(world):
    scene = world_scene(world, 0)
    obj = scene.objects[0]
    other = next(s for s in vocab.SIZES if s != obj.size)
    grown = with_attribute(scene, 0, "size", other).objects[0]
    assert grown.radius / obj.radius == pytest.approx(vocab.SIZE_RADIUS[other] / vocab.SIZE_RADIUS[obj.size])
    assert (grown.cx, grown.cy, grown.size) == (obj.cx, obj.cy, other)
    with pytest.raises(FinevlError, match="cannot change 'shape'"):
        with_attribute(scene, 0, "shape", "star")


def test_new_values_are_what_the_world_could_draw_and_silhouettes_fill_holes(world):
    for image_id in range(20):
        scene = world_scene(world, image_id)
        names = {(o.color, o.shape) for o in scene.objects}
        for k, obj in enumerate(scene.objects):
            assert obj.pattern not in new_values(scene, k, "pattern")
            for color in new_values(scene, k, "color"):  # contrast kept, names unique
                assert color not in vocab.LOW_CONTRAST[scene.background] and (color, obj.shape) not in names
            for size in new_values(scene, k, "size"):  # still inside the image
                new = with_attribute(scene, k, "size", size).objects[k]
                assert new.radius <= min(new.cx, new.cy, scene.size - new.cx, scene.size - new.cy)
            shape = silhouette(scene, k)
            assert (shape >= scene.visible[k]).all()  # an outlined shape's hole is inside it
            assert (shape.sum() > scene.visible[k].sum()) == (obj.pattern == "outlined")
        for background in new_values(scene, 0, "background"):
            assert not {o.color for o in scene.objects} & vocab.LOW_CONTRAST[background]
