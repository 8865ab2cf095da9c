"""One image of the world, end to end: scene, pixels, and every annotation record."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from finevl.data.coco import encode_masks, rle_area_bbox
from finevl.language import vocab
from finevl.language.facts import by_criterion, scene_facts, stated_relations
from finevl.language.scene import Scene
from finevl.world.language import coarse_captions, fine_caption, full_phrase, region_descriptions
from finevl.world.render import render_scene
from finevl.world.scene import sample_scene
from finevl.world.vqa import vqa_pairs

CATEGORIES = [{"id": k + 1, "name": s, "supercategory": "shape"} for k, s in enumerate(vocab.SHAPES)]
CATEGORY_ID = {c["name"]: c["id"] for c in CATEGORIES}
# Ids derive from the image id, so any split of the work over processes gives the same ones.
MAX_INSTANCES, CAPTIONS_PER_IMAGE, MAX_QUESTIONS = 4, 5, 16


def file_name(image_id: int) -> str:
    return f"{image_id:08d}.png"


def scene_rng(seed: int, image_id: int) -> random.Random:
    """The image's own random stream: independent of every other image."""
    return random.Random(f"fineshapes-{seed}-{image_id}")


def finecap_phrases(scene: Scene) -> dict[str, list[str]]:
    """FineCapEval-style reference phrases per criterion."""
    rels = [
        f"the {scene.objects[i].ref} is {rel} the {scene.objects[j].ref}"
        for i, rel, j in stated_relations(scene)
    ]
    return {
        "background": [vocab.BACKGROUNDS[scene.background][0]],
        "object": [full_phrase(o) for o in scene.objects],
        "relation": rels,
        "text": [f'"{scene.text}"'] if scene.text else [],
    }


def scene_record(scene: Scene) -> dict[str, Any]:
    """The scene's geometry, enough to decide any fact later (`facts.scene_from_record`)."""
    return {
        "size": scene.size,
        "background": scene.background,
        "text": scene.text,
        "objects": [
            {
                "shape": o.shape,
                "color": o.color,
                "size": o.size,
                "pattern": o.pattern,
                "center": [round(o.cx, 3), round(o.cy, 3)],
                "radius": round(o.radius, 3),
            }
            for o in scene.objects
        ],
        "occludes": sorted([list(p) for p in scene.occludes]),
    }


def annotate(scene: Scene, rng: random.Random, image_id: int) -> dict[str, Any]:
    """Every record the world writes for one image, keyed by output file."""
    name = file_name(image_id)
    rles = encode_masks(scene.visible)
    areas, boxes = rle_area_bbox(rles)
    rank = {obj: d for d, obj in enumerate(scene.depth)}
    instances, regions = [], []
    for k, obj in enumerate(scene.objects):
        ann_id = image_id * MAX_INSTANCES + k + 1
        instances.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": CATEGORY_ID[obj.shape],
                "segmentation": rles[k],
                "area": areas[k],
                "bbox": boxes[k],
                "iscrowd": 0,
                "attributes": {
                    "color": obj.color,
                    "size": obj.size,
                    "pattern": obj.pattern,
                    "depth": rank[k],
                },
            }
        )
        short, detailed = region_descriptions(scene, k)
        regions.append(
            {"id": ann_id, "image_id": image_id, "category": obj.shape, "short": short, "detailed": detailed}
        )
    captions = [
        {"id": image_id * CAPTIONS_PER_IMAGE + k + 1, "image_id": image_id, "caption": c}
        for k, c in enumerate(coarse_captions(rng, scene, CAPTIONS_PER_IMAGE))
    ]
    vqa = [
        {
            "question_id": image_id * MAX_QUESTIONS + k,
            "image_id": image_id,
            "image": f"images/{name}",
            "question": q,
            "answer": a,
            "family": fam,
        }
        for k, (q, a, fam) in enumerate(vqa_pairs(rng, scene))
    ]
    return {
        "image": {
            "id": image_id,
            "file_name": name,
            "width": scene.size,
            "height": scene.size,
            "background": scene.background,
            "text": scene.text,
        },
        "instances": instances,
        "captions": captions,
        "finecap": {
            "image_id": image_id,
            "file_name": name,
            "caption": fine_caption(scene),
            "facts": by_criterion(scene_facts(scene)),
            "phrases": finecap_phrases(scene),
            "scene": scene_record(scene),
        },
        "regions": regions,
        "vqa": vqa,
    }


def build_image(
    seed: int, image_id: int, size: int, **scene_options: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """(pixels, records) of image `image_id` of the world with `seed`."""
    rng = scene_rng(seed, image_id)
    scene = sample_scene(rng, size, **scene_options)
    return render_scene(scene), annotate(scene, rng, image_id)
