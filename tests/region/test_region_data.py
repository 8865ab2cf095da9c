"""Osprey-format region data (read, written, masks through pycocotools), the world's stage
data, and the world's exact judge of a region description."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from finevl.data.coco import encode_masks
from finevl.data.regions import MASK_PAIR, osprey_record, read_osprey, resolve_regions, write_osprey
from finevl.errors import FinevlError
from finevl.language import vocab
from finevl.language.facts import region_facts
from finevl.metrics.finecap import FactScores
from finevl.train.region.data import STAGE_TASKS, world_records, world_regions
from finevl.world.language import region_descriptions
from finevl.world.scene import sample_scene


def _square(side: int, x0: int, y0: int, w: int) -> np.ndarray:
    m = np.zeros((side, side), bool)
    m[y0 : y0 + w, x0 : x0 + w] = True
    return m


def test_osprey_records_round_trip_with_rle_and_polygon_masks(tmp_path):
    rle = encode_masks([_square(40, 2, 3, 10)])[0]
    polygon = [[20.0, 20.0, 35.0, 20.0, 35.0, 35.0, 20.0, 35.0]]
    pairs = [("What is <region2>?", "a box"), ("Is <region1> left of <region2>?", "yes")]
    path = tmp_path / "osprey.json"
    write_osprey(path, [osprey_record("a.png", (40, 40), [rle, polygon], pairs, task="mixed")])
    raw = json.loads(path.read_text())
    assert raw[0]["conversations"][0] == {"from": "human", "value": "<image>\nWhat is <region2>?"}
    first, second = read_osprey(path)
    assert first.question == f"What is {MASK_PAIR}?" and first.kind == "mixed"
    assert second.question == f"Is {MASK_PAIR} left of {MASK_PAIR}?"
    box, poly = second.masks()
    assert np.array_equal(box, _square(40, 2, 3, 10))
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, 40, 40))).astype(bool)
    assert np.array_equal(poly, expected) and np.array_equal(first.masks()[0], expected)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"conversations": [{"from": "human", "value": "<region3>?"}, {"from": "gpt", "value": "x"}]},
            "names region 3 but 1",
        ),
        (
            {"conversations": [{"from": "human", "value": "<region0>?"}, {"from": "gpt", "value": "x"}]},
            "names region 0 but 1",
        ),
        (
            {"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]},
            "alternate human, gpt",
        ),
        (
            {"conversations": [{"from": "robot", "value": "x"}, {"from": "gpt", "value": "y"}]},
            "conversations.0.from",
        ),
        ({"height": 0}, "height"),
        (
            {
                "conversations": [
                    {"from": "human", "value": "<region1>?"},
                    {"from": "gpt", "value": "x"},
                    {"from": "human", "value": "and?"},
                ]
            },
            "end with gpt",
        ),  # fmt: skip
    ],
)
def test_bad_records_are_one_clear_error(tmp_path, record, message):
    good = osprey_record("a.png", (40, 40), encode_masks([_square(40, 2, 3, 10)]), [("<region1>?", "a box")])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{**good, **record}]))
    with pytest.raises(FinevlError, match=message):
        read_osprey(path)


def test_a_mask_of_the_wrong_size_is_refused_when_decoded(tmp_path):
    rec = osprey_record("a.png", (50, 40), encode_masks([_square(40, 2, 3, 10)]), [("<region1>?", "a box")])
    path = tmp_path / "r.json"
    write_osprey(path, [rec])
    with pytest.raises(FinevlError, match="mask is 40x40 but its image is 40x50"):
        read_osprey(path)[0].masks()


def test_resolve_regions_orders_masks_as_the_text_names_them():
    assert resolve_regions("<region2> and <region1>", 2) == (f"{MASK_PAIR} and {MASK_PAIR}", [1, 0])
    assert resolve_regions(f"{MASK_PAIR} then {MASK_PAIR}", 2)[1] == [0, 1]
    with pytest.raises(FinevlError, match="names region 3 but 2"):
        resolve_regions(f"{MASK_PAIR} {MASK_PAIR} {MASK_PAIR}", 2)


def test_world_stage_data_has_each_stage_tasks(world):
    regions = world_regions(world, "train")
    for stage, tasks in STAGE_TASKS.items():
        records = world_records(world, "train", 10, stage, seed=0)
        assert {r["task"] for r in records} == set(tasks)
        for rec in records:
            objs = regions[int(rec["file_name"][:8])]
            assert len(rec["annotation"]) == (0 if rec["task"] == "caption" else len(objs))
    stage2 = world_records(world, "train", 10, "2", seed=0)
    classes = [r for r in stage2 if r["task"] == "class"]
    one = classes[0]
    objs = regions[int(one["file_name"][:8])]
    assert [m["value"] for m in one["conversations"][1::2]] == [o.category for o in objs]
    with pytest.raises(FinevlError, match="fewer than --images"):
        world_records(world, "train", 10_000, "2", seed=0)


def test_world_regions_know_their_overlaps(world):
    regions = [r for rs in world_regions(world, "train").values() for r in rs]
    for r in regions:
        assert r.mask().sum() > 0
        assert r.overlapping == any(r.index in pair for pair in r.scene["occludes"])
    assert any(r.overlapping for r in regions) and not all(r.overlapping for r in regions)


def test_region_description_is_exactly_judged():
    rng = random.Random(4)
    scene = next(s for s in (sample_scene(rng) for _ in range(50)) if len(s.objects) >= 3)
    _, detailed = region_descriptions(scene, 1)
    own = FactScores()
    own.update(detailed, scene, region=1)
    assert own.compute()["f1/all"] == 1.0
    assert len(region_facts(scene, 1)) == 3 + len(scene.objects) - 1
    other = FactScores()
    other.update(region_descriptions(scene, 0)[1], scene, region=1)  # true, but about another object
    assert other.compute()["precision/all"] < 0.5
    obj = scene.objects[1]
    wrong_size = next(s for s in ("small", "medium", "large") if s != obj.size)
    judged = FactScores()  # a background and another size: stated, neither true of the region
    background = vocab.BACKGROUNDS[scene.background][0]
    judged.update(f"A {wrong_size} {obj.color} {obj.shape} on {background}.", scene, region=1)
    out = judged.compute()
    assert out["precision/all"] == pytest.approx(1 / 3) and out["recall/object"] == pytest.approx(1 / 3)
