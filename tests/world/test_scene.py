"""Scenes and pixels agree: masks are exact, every stated relation is true geometry."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from finevl.language import vocab
from finevl.world.render import RGB, render_scene
from finevl.world.scene import MIN_VISIBLE, sample_scene


@pytest.fixture(scope="module")
def scenes():
    return [sample_scene(random.Random(s), 96) for s in range(600)]


def test_vocabulary_covers_the_issue(scenes):
    objs = [o for s in scenes for o in s.objects]
    assert len(vocab.BACKGROUNDS) >= 8 and {s.background for s in scenes} == set(vocab.BACKGROUNDS)
    assert {o.shape for o in objs} == set(vocab.SHAPES) and len(vocab.SHAPES) >= 8
    assert {o.color for o in objs} == set(vocab.COLORS) and len(vocab.COLORS) >= 10
    assert {o.size for o in objs} == {"small", "medium", "large"}
    assert {o.pattern for o in objs} == {"solid", "striped", "dotted", "outlined"}
    assert set(Counter(len(s.objects) for s in scenes)) == {1, 2, 3, 4}
    assert 0.15 < sum(bool(s.occludes) for s in scenes) / len(scenes) < 0.45
    assert 0.1 < sum(s.text is not None for s in scenes) / len(scenes) < 0.35


def test_visible_masks_are_disjoint_and_mostly_visible(scenes):
    for s in scenes:
        stack = np.stack(s.visible)
        assert stack.sum(axis=0).max() <= 1
        for vis, painted in zip(s.visible, s.painted, strict=True):
            assert vis.sum() >= MIN_VISIBLE * painted.sum() > 0
            assert not (vis & ~painted).any()
        if s.text_mask is not None:
            assert not (s.text_mask & stack.any(axis=0)).any()


def test_solid_objects_paint_exactly_their_colour(scenes):
    for s in scenes[:200]:
        pixels = render_scene(s)
        for obj, vis in zip(s.objects, s.visible, strict=True):
            if obj.pattern == "solid":
                assert (pixels[vis] == np.array(RGB[obj.color], np.uint8)).all()


def test_relations_match_geometry_and_occlusion(scenes):
    for s in scenes:
        for i, a in enumerate(s.objects):
            for j, b in enumerate(s.objects):
                if i == j:
                    continue
                rels = s.relations(i, j)
                if "left of" in rels:
                    assert a.cx < b.cx and abs(b.cx - a.cx) >= abs(b.cy - a.cy)
                if "above" in rels:
                    assert a.cy < b.cy and abs(b.cy - a.cy) > abs(b.cx - a.cx)
                if "in front of" in rels:
                    assert s.depth.index(i) > s.depth.index(j)
                    assert (s.painted[i] & s.painted[j]).any()


def test_low_contrast_colours_never_drawn_on_their_background(scenes):
    for s in scenes:
        assert not {o.color for o in s.objects} & vocab.LOW_CONTRAST[s.background]


def test_references_are_unique_within_a_scene(scenes):
    for s in scenes:
        refs = [o.ref for o in s.objects]
        assert len(refs) == len(set(refs))


def test_every_stated_pattern_is_visible_even_at_48_px():
    from finevl.world.scene import pattern_shows
    from finevl.world.shapes import shape_mask

    for size in (48, 64):
        for seed in range(300):
            s = sample_scene(random.Random(seed), size)
            for o, painted in zip(s.objects, s.painted, strict=True):
                assert pattern_shows(
                    o.pattern, shape_mask(o.shape, o.cx, o.cy, o.radius, size), painted, size
                )


def test_scene_record_rebuilds_every_relation():
    from finevl.language.facts import scene_facts, scene_from_record
    from finevl.world.annotate import scene_record

    for seed in range(300):
        s = sample_scene(random.Random(seed), 96)
        r = scene_from_record(scene_record(s))
        assert scene_facts(r) == scene_facts(s)
        n = len(s.objects)
        assert all(s.relations(i, j) == r.relations(i, j) for i in range(n) for j in range(n) if i != j)
