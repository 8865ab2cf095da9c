"""Region training data drawn from a FineShapes world, written as Osprey-format records so
that the trainers read a world and a real region dataset the same way.

Stage 1 (image-text alignment): one coarse caption per image. Stage 2 (mask-text
alignment): each region's class and short description. Stage 3 (instructions): class,
short and detailed descriptions, colour/pattern/size questions, and the relation between
two regions of the same image.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finevl.data.coco import CocoCaptions, CocoInstances, decode_segmentation
from finevl.data.formats import in_split, read_finecap, read_regions
from finevl.data.regions import osprey_record
from finevl.errors import FinevlError
from finevl.language.facts import scene_from_record
from finevl.train.region.prompts import ATTRIBUTE, CLASS, DETAILED, RELATION, SHORT, region_question
from finevl.train.stic.prompts import BRIEF

STAGE_TASKS = {
    "1": ("caption",),
    "2": ("class", "short"),
    "3": ("class", "short", "detailed", "attribute", "relation"),
}


@dataclass
class WorldRegion:
    """One object of a world image: its mask, its words and its scene."""

    image_id: int
    file_name: str
    size: tuple[int, int]
    index: int  # position in the scene's object list
    segmentation: dict[str, Any]
    category: str
    short: str
    detailed: str
    attributes: dict[str, Any]
    scene: dict[str, Any]

    def mask(self) -> np.ndarray:
        """The object's visible pixels, a boolean (height, width) array."""
        return decode_segmentation(self.segmentation, self.size[1], self.size[0], f"{self.file_name}: region")

    @property
    def overlapping(self) -> bool:
        """Whether the object overlaps another (in front of it or behind it)."""
        return any(self.index in pair for pair in self.scene.get("occludes", []))


def world_regions(
    folder: str | Path, split: str, image_ids: list[int] | None = None
) -> dict[int, list[WorldRegion]]:
    """{image id: its regions in scene order} of a world split (or of `image_ids` in it)."""
    folder = Path(folder)
    if not (folder / "instances.json").is_file() or not (folder / "regions.json").is_file():
        raise FinevlError(f"{folder}: not a world folder (no instances.json / regions.json)")
    instances = CocoInstances(folder / "instances.json")
    wanted = set(in_split(folder, split, sorted(instances.images)))
    if image_ids is not None:
        wanted &= set(image_ids)
    words = {r.id: r for r in read_regions(folder / "regions.json") if r.image_id in wanted}
    scenes = {r.image_id: r.scene for r in read_finecap(folder / "finecap.json") if r.image_id in wanted}
    out: dict[int, list[WorldRegion]] = {}
    for image_id in sorted(wanted):
        img = instances.images[image_id]
        out[image_id] = [
            WorldRegion(
                image_id=image_id,
                file_name=img.file_name,
                size=(img.width, img.height),
                index=k,
                segmentation=ann.segmentation,
                category=words[ann.id].category,
                short=words[ann.id].short,
                detailed=words[ann.id].detailed,
                attributes=ann.attributes,
                scene=scenes[image_id] or {},
            )
            for k, ann in enumerate(instances.annotations[image_id])
        ]
    return out


def _region_pairs(regions: list[WorldRegion], task: str, rng: random.Random) -> list[tuple[str, str]]:
    if task == "class":
        return [(region_question(CLASS, r.index + 1), r.category) for r in regions]
    if task == "short":
        return [(region_question(SHORT, r.index + 1), r.short) for r in regions]
    if task == "detailed":
        return [(region_question(DETAILED, r.index + 1), r.detailed) for r in regions]
    if task == "attribute":
        return [
            (region_question(ATTRIBUTE[a], r.index + 1), str(r.attributes[a]))
            for r in regions
            for a in ATTRIBUTE
        ]
    if task == "relation" and len(regions) >= 2:
        scene = scene_from_record(regions[0].scene)
        i, j = rng.sample(range(len(regions)), 2)
        return [(region_question(RELATION, i + 1, j + 1), scene.main_relation(i, j))]
    return []


def world_records(folder: str | Path, split: str, images: int, stage: str, seed: int) -> list[dict[str, Any]]:
    """Osprey-format records of one stage's data, drawn from `images` images of a split:
    one record per image and task."""
    folder = Path(folder)
    if stage not in STAGE_TASKS:
        raise FinevlError(f"no world data for stage {stage!r}")
    rng = random.Random(seed)
    regions = world_regions(folder, split)
    if len(regions) < images:
        raise FinevlError(f"{folder}: {len(regions)} {split} images, fewer than --images {images}")
    chosen = sorted(rng.sample(sorted(regions), images))
    captions = CocoCaptions(folder / "captions.json").captions if stage == "1" else {}
    records = []
    for image_id in chosen:
        objs = regions[image_id]
        name, size = objs[0].file_name, objs[0].size
        segs = [r.segmentation for r in objs]
        for task in STAGE_TASKS[stage]:
            pairs = (
                [(BRIEF, rng.choice(captions[image_id]))]
                if task == "caption"
                else _region_pairs(objs, task, rng)
            )
            if pairs:
                records.append(osprey_record(name, size, segs if task != "caption" else [], pairs, task))
    return records
