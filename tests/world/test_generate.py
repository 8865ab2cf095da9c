"""The generated files: standard formats, exact masks, determinism, safe writes."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from finevl.data.coco import CocoCaptions, CocoInstances
from finevl.data.formats import read_finecap, read_regions
from finevl.data.images import load_image
from finevl.data.jsonio import iter_jsonl, read_json
from finevl.data.shards import iter_shards
from finevl.errors import FinevlError
from finevl.language.grammar import parse_caption
from finevl.world import generate as gen
from finevl.world.generate import WorldConfig, generate_world

FILES = [
    "instances.json",
    "captions.json",
    "finecap.json",
    "regions.json",
    "vqa.jsonl",
    "splits.json",
    "world.json",
]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_give_byte_identical_files_whatever_the_workers(world, tmp_path):
    generate_world(WorldConfig(n=60, size=64, seed=3, shards=2), tmp_path / "again", workers=2)
    assert _digest(tmp_path / "again") == _digest(world)
    generate_world(WorldConfig(n=60, size=64, seed=4, shards=2), tmp_path / "other", workers=1)
    assert _digest(tmp_path / "other")["instances.json"] != _digest(world)["instances.json"]


def test_instances_are_coco_with_exact_rle_masks(world):
    coco = COCO(str(world / "instances.json"))
    inst = CocoInstances(world / "instances.json")
    assert len(coco.getImgIds()) == 60 and len(coco.getCatIds()) == 8
    differ = 0
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann).astype(bool)
        ours = inst.mask(next(a for a in inst.annotations[ann["image_id"]] if a.id == ann["id"]))
        assert (mask == ours).all() and mask.sum() == ann["area"] > 0
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert {"color", "size", "pattern", "depth"} <= set(ann["attributes"])
        differ += ann["area"] < 0.6 * ann["bbox"][2] * ann["bbox"][3]
    assert differ > 0  # occluded and hollow objects: masks are not boxes


def test_masks_cover_pixels_of_the_object_colour(world):
    inst = CocoInstances(world / "instances.json")
    from finevl.world.render import RGB

    for image_id, anns in list(inst.annotations.items())[:20]:
        pixels = np.asarray(load_image(world / "images" / inst.images[image_id].file_name))
        for ann in anns:
            if ann.attributes["pattern"] == "solid":
                colour = np.array(RGB[ann.attributes["color"]], np.uint8)
                assert (pixels[inst.mask(ann)] == colour).all()


def test_captions_finecap_regions_vqa_and_splits(world):
    caps = CocoCaptions(world / "captions.json")
    assert all(len(c) == 5 for c in caps.captions.values()) and len(caps) == 60
    fine = read_finecap(world / "finecap.json")
    for rec in fine:
        parsed = {str(f) for f in parse_caption(rec.caption).facts}
        assert parsed == {f for facts in rec.facts.values() for f in facts}
        assert set(rec.facts) == {"background", "object", "relation", "text"}
    regions = read_regions(world / "regions.json")
    inst = CocoInstances(world / "instances.json")
    assert {r.id for r in regions} == {a.id for anns in inst.annotations.values() for a in anns}
    families = {r["family"] for _, r in iter_jsonl(world / "vqa.jsonl")}
    assert families == {"attribute", "count", "relation", "background", "text"}
    splits = read_json(world / "splits.json")
    ids = splits["train"] + splits["val"] + splits["test"]
    assert sorted(ids) == list(range(60)) and len(splits["test"]) == 6


def test_shards_follow_open_clip_train_layout(world):
    shards = world / "shards"
    sizes = read_json(shards / "sizes.json")
    assert sum(sizes.values()) == 60 and len(sizes) == 6
    with tarfile.open(shards / "train-000000.tar") as tar:
        members = tar.getmembers()
        assert {Path(m.name).suffix for m in members} == {".png", ".txt", ".json"}
        assert {m.mtime for m in members} == {946684800}
    samples = list(iter_shards(shards))
    assert len(samples) == 60
    fine = {r.file_name: r.caption for r in read_finecap(world / "finecap.json")}
    for s in samples:
        assert s["text"] == fine[s["key"] + ".png"]
        assert s["image"].size == (64, 64) and s["json"]["image"]["file_name"] == s["key"] + ".png"
        assert {"instances", "captions", "regions", "vqa", "finecap"} <= set(s["json"])


def test_existing_world_is_never_overwritten_unasked(world_copy):
    before = _digest(world_copy)
    with pytest.raises(FinevlError, match="already exists; pass --overwrite"):
        generate_world(WorldConfig(n=5, size=64), world_copy, workers=1)
    assert _digest(world_copy) == before


def test_overwrite_never_replaces_a_folder_that_is_not_a_world(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(FinevlError, match="not written by finevl"):
        generate_world(WorldConfig(n=3, size=64), precious, workers=1, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_failure_midway_keeps_the_old_world_and_leaves_no_debris(world_copy, monkeypatch):
    before = _digest(world_copy)
    real = gen.build_image

    def flaky(seed, image_id, size, **kw):
        if image_id == 7:
            raise RuntimeError("disk on fire")
        return real(seed, image_id, size, **kw)

    monkeypatch.setattr(gen, "build_image", flaky)
    with pytest.raises(RuntimeError):
        generate_world(WorldConfig(n=20, size=64), world_copy, workers=1, overwrite=True)
    assert _digest(world_copy) == before
    assert [p.name for p in world_copy.parent.iterdir()] == [world_copy.name]


def test_overwrite_replaces(world_copy):
    summary = generate_world(WorldConfig(n=5, size=64), world_copy, workers=1, overwrite=True)
    assert summary["counts"]["images"] == 5
    assert len(list((world_copy / "images").iterdir())) == 5
    assert json.loads((world_copy / "world.json").read_text())["config"]["n"] == 5


@pytest.mark.parametrize(
    "bad", [dict(n=0), dict(size=8), dict(shards=-1), dict(max_objects=5), dict(val_frac=0.6, test_frac=0.5)]
)
def test_bad_configs_are_refused(bad):
    with pytest.raises(FinevlError):
        WorldConfig(**bad)
