"""FineShapes' compositional pairs: every category made, every positive true and every
negative false by the parser, balanced changes, deterministic from the seed."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from finevl.language import vocab
from finevl.language.grammar import caption_is_false, caption_is_true
from finevl.world import compose
from finevl.world.annotate import scene_record
from finevl.world.compose import WORLD_CATEGORIES, Draft, build_pairs
from finevl.world.scene import sample_scene


@pytest.fixture(scope="module")
def scenes() -> list[tuple[str, dict]]:
    return [(f"img{k}.png", scene_record(sample_scene(random.Random(k), 64))) for k in range(160)]


@pytest.fixture(scope="module")
def made(scenes):
    return build_pairs(scenes, seed=1)


def test_every_category_is_made_and_checked_by_the_parser(scenes, made):
    records = dict(scenes)
    counts = Counter(p.category for p in made.pairs)
    assert set(counts) == set(WORLD_CATEGORIES) and min(counts.values()) >= 40, counts
    for pair in made.pairs:
        assert pair.positive != pair.negative
        assert caption_is_true(pair.positive, records[pair.image]), pair
        assert caption_is_false(pair.negative, records[pair.image]), pair
        assert not caption_is_false(pair.positive, records[pair.image]), pair


def test_swaps_use_the_same_words_and_changes_are_balanced(made):
    for pair in made.pairs:
        if pair.category.startswith("swap"):
            assert sorted(pair.positive.split()) == sorted(pair.negative.split()), pair

    def words(category: str, side: str, lexicon) -> Counter:
        return Counter(
            w.strip(".").lower()
            for p in made.pairs
            if p.category == category
            for w in getattr(p, side).split()
            if w.strip(".").lower() in lexicon
        )

    # each change is kept as often as its reverse, so no value is more often the negative's
    assert words("count", "positive", vocab.NUMBERS) == words("count", "negative", vocab.NUMBERS)
    assert words("replace_obj", "positive", vocab.SHAPES) == words("replace_obj", "negative", vocab.SHAPES)
    assert sum(made.balanced_out.values()) > 0


def test_pairs_are_deterministic_from_the_seed(scenes, made):
    assert build_pairs(scenes, seed=1).pairs == made.pairs
    assert build_pairs(scenes, seed=2).pairs != made.pairs


def test_a_pair_failing_the_parser_check_is_dropped_and_counted(scenes, monkeypatch):
    def true_negative(scene, rng, ctx):
        obj = scene.objects[0]
        text = f"A {obj.color} {obj.shape} on {vocab.BACKGROUNDS[scene.background][0]}."
        return Draft("count", text, text)

    monkeypatch.setitem(compose.MAKERS, "count", true_negative)
    out = build_pairs(scenes[:20], seed=1)
    assert out.dropped["count"] == 20
    assert not any(p.category == "count" for p in out.pairs)


def test_caption_is_false_reads_relations_and_unknown_words():
    rec = {
        "size": 64,
        "background": "grass",
        "objects": [
            {
                "shape": "star",
                "color": "red",
                "size": "large",
                "pattern": "solid",
                "center": [15, 30],
                "radius": 9,
            },
            {
                "shape": "circle",
                "color": "blue",
                "size": "small",
                "pattern": "dotted",
                "center": [50, 30],
                "radius": 5,
            },
        ],
    }
    assert not caption_is_false("a red star left of a blue circle on grass", rec)
    assert caption_is_false("a red star right of a blue circle", rec)
    assert caption_is_false("a small red star", rec)
    assert caption_is_false("three shapes", rec)
    assert not caption_is_false("a wonderful afternoon", rec)  # nothing the parser can read
    assert not caption_is_true("a wonderful afternoon", rec)
