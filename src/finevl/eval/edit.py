"""Editing measured on FineShapes: edits of one attribute of a test scene, judged by models
the optimisation never saw.

An `EditCase` asks to change one attribute (an object's colour, pattern or size, or the
background) to another value, with the world's canonical phrases as source and target
("a small red solid star on snow" -> "a small blue solid star on snow") and the region the
edit may touch (for colour the object's painted pixels, for pattern its silhouette, for
size its silhouette at every size, for the background everything but the objects).
`judge_edit` scores the result:

- `clip` / `judge_clip`: the optimised CLIP / an independent CLIP prefers the target text
  over the source text on the edited image (`*_before`: on the input);
- `judge`: the attribute judge (`models/attribute_judge.py`) reads the target value,
  `changed`: it no longer reads the input's value, `others_kept`: every other attribute it
  reads is as on the input;
- `adversarial`: the optimised CLIP says target while the attribute judge does not
  (`adversarial_clip`: while the second CLIP does not);
- `change_inside` / `change_outside`: mean absolute pixel change in / outside the region.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finevl.apps.editing import embed_pixels, image_tensor
from finevl.data.coco import CocoInstances
from finevl.data.formats import in_split
from finevl.data.images import load_image
from finevl.errors import FinevlError
from finevl.language import vocab
from finevl.models.attribute_judge import AttributeJudge
from finevl.models.clip import Clip
from finevl.world.counterfactual import EDITABLE, checked_scene, growth_region, new_values, silhouette
from finevl.world.language import with_article

KINDS = tuple(EDITABLE)


@dataclass
class EditCase:
    """One requested edit of a world image."""

    image_id: int
    path: Path
    kind: str
    obj: int  # the edited object's index in the image's annotations (0 for the background)
    before: str  # the attribute's value in the image
    after: str  # the value the edit asks for
    source: str
    target: str
    object_mask: np.ndarray  # the edited object's silhouette (background edits: the first object's)
    region: np.ndarray  # where the edit may act

    def describe(self) -> dict[str, Any]:
        """The case's JSON-able fields (no masks)."""
        return {
            k: getattr(self, k) for k in ("image_id", "kind", "obj", "before", "after", "source", "target")
        }


def phrase(attrs: dict[str, str]) -> str:
    """'a small red solid star on snow': the world's canonical words."""
    obj = f"{attrs['size']} {attrs['color']} {attrs['pattern']} {attrs['shape']}"
    return f"{with_article(obj)} on {vocab.BACKGROUNDS[attrs['background']][0]}"


def _case(
    world: Path, instances: CocoInstances, image_id: int, kind: str, rng: random.Random
) -> EditCase | None:
    """One edit of a random object of the image (the background's: the first object), to a
    random value the world can draw there; None when there is none."""
    anns, img = instances.annotations[image_id], instances.images[image_id]
    scene = checked_scene(world, image_id, [a.attributes for a in anns])
    k = 0 if kind == "background" else rng.randrange(len(anns))
    values = new_values(scene, k, kind)
    if not values:
        return None
    after, obj = rng.choice(values), scene.objects[k]
    attrs = {a: getattr(obj, a) for a in ("shape", "color", "size", "pattern")} | {
        "background": scene.background
    }
    mask = silhouette(scene, k)
    regions = {
        "color": instances.mask(anns[k]),  # the painted pixels (an outlined shape's ring)
        "pattern": mask,
        "size": growth_region(scene, k),
        "background": ~np.any([instances.mask(a) for a in anns], axis=0),
    }
    return EditCase(
        image_id=image_id,
        path=world / "images" / img.file_name,
        kind=kind,
        obj=k,
        before=attrs[kind],
        after=after,
        source=phrase(attrs),
        target=phrase({**attrs, kind: after}),
        object_mask=mask,
        region=regions[kind],
    )


def edit_cases(world: str | Path, split: str, per_kind: int, seed: int) -> list[EditCase]:
    """`per_kind` edits of each kind on random scenes of a split (`_case`)."""
    world = Path(world)
    instances = CocoInstances(world / "instances.json")
    ids = in_split(world, split, sorted(instances.images))
    rng = random.Random(seed)
    cases = []
    for kind in KINDS:
        found = []
        for image_id in rng.sample(ids, len(ids)):
            if case := _case(world, instances, image_id, kind, rng):
                found.append(case)
            if len(found) == per_kind:
                break
        if len(found) < per_kind:
            raise FinevlError(
                f"{world}: only {len(found)} {split} scenes allow a {kind} edit, not {per_kind}"
            )
        cases += found
    return cases


@torch.no_grad()
def prefers_target(clip: Clip, pixels: torch.Tensor, case: EditCase) -> bool:
    """Whether `clip` finds (1, 3, H, W) [0, 1] pixels closer to the target than the source."""
    texts = clip.encode_text(clip.tokenize([case.target, case.source]))
    sims = embed_pixels(clip.eval(), pixels) @ texts.T
    return bool(sims[0, 0] > sims[0, 1])


def judge_edit(
    case: EditCase, edited: torch.Tensor, clip: Clip, judge_clip: Clip, judge: AttributeJudge
) -> dict[str, Any]:
    """The scores of one edit (module docstring); `edited` is (1, 3, H, W) in [0, 1]."""
    original = image_tensor(load_image(case.path))
    read_before, read_after = (judge.judge(x[0], case.object_mask) for x in (original, edited))
    change = (edited - original).abs().mean(1)[0]
    region = torch.from_numpy(case.region)
    says_target = read_after[case.kind] == case.after
    clip_before, clip_after = prefers_target(clip, original, case), prefers_target(clip, edited, case)
    second_after = prefers_target(judge_clip, edited, case)
    return {
        **case.describe(),
        "clip_before": clip_before,
        "clip": clip_after,
        "judge_clip_before": prefers_target(judge_clip, original, case),
        "judge_clip": second_after,
        "judge_read_input": read_before[case.kind] == case.before,
        "judge": says_target,
        "judge_reads": read_after[case.kind],
        "changed": read_after[case.kind] != read_before[case.kind],
        "others_kept": all(read_after[k] == read_before[k] for k in read_after if k != case.kind),
        "adversarial": clip_after and not says_target,
        "adversarial_clip": clip_after and not second_after,
        # the CLIP turned to the target by the edit (not before), the judge does not see it
        "flipped": clip_after and not clip_before,
        "flipped_unseen": clip_after and not clip_before and not says_target,
        "change_inside": float(change[region].mean()),
        "change_outside": float(change[~region].mean()) if (~region).any() else 0.0,
    }


RATES = (
    "judge",
    "judge_clip",
    "clip",
    "adversarial",
    "adversarial_clip",
    "flipped",
    "flipped_unseen",
    "changed",
    "others_kept",
    "clip_before",
    "judge_clip_before",
    "judge_read_input",
)
CHANGES = ("change_inside", "change_outside")
SCORE_LABELS = {  # a table's column -> score
    "judge: target": "judge",
    "2nd CLIP: target": "judge_clip",
    "CLIP: target": "clip",
    "CLIP before": "clip_before",
    "adversarial": "adversarial",
    "adversarial (2nd CLIP)": "adversarial_clip",
    "CLIP flipped": "flipped",
    "flipped, judge not": "flipped_unseen",
    "others kept": "others_kept",
    "change inside": "change_inside",
    "change outside": "change_outside",
}


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per kind (and `all`): the rate of each yes/no score and the mean pixel changes."""
    out = {}
    for kind in (*KINDS, "all"):
        rows = [r for r in records if kind in ("all", r["kind"])]
        if rows:
            out[kind] = {k: float(np.mean([r[k] for r in rows])) for k in (*RATES, *CHANGES)}
            out[kind]["edits"] = len(rows)
    return out
