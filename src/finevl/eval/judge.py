"""Train the attribute judge of the editing benchmark on a world's masks and labels: every
object of a split as its views -> (colour, pattern, size, background). An object is shown
by its silhouette (`world.counterfactual.silhouette`: an outlined shape's hole included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from finevl.data.coco import CocoInstances
from finevl.data.formats import in_split
from finevl.data.images import load_image
from finevl.models.attribute_judge import HEADS, VIEWS, AttributeJudge, judge_views
from finevl.world.counterfactual import EDITABLE, checked_scene, silhouette

Views = dict[str, torch.Tensor]


def judge_labels() -> dict[str, list[str]]:
    """The values each head tells apart: the world's editable attributes."""
    return {name: list(values) for name, values in EDITABLE.items()}


def judge_examples(world: str | Path, split: str) -> tuple[Views, dict[str, torch.Tensor]]:
    """(views, label indices per head) of every object of a split."""
    world = Path(world)
    instances = CocoInstances(world / "instances.json")
    labels = judge_labels()
    views: dict[str, list[torch.Tensor]] = {view: [] for view in VIEWS}
    targets: dict[str, list[int]] = {name: [] for name in HEADS}
    for image_id in in_split(world, split, sorted(instances.images)):
        img = instances.images[image_id]
        pixels = (
            torch.from_numpy(np.array(load_image(world / "images" / img.file_name))).permute(2, 0, 1) / 255
        )
        anns = instances.annotations[image_id]
        scene = checked_scene(world, image_id, [a.attributes for a in anns])
        for k, ann in enumerate(anns):
            for view, x in judge_views(pixels, torch.from_numpy(silhouette(scene, k))).items():
                views[view].append(x)
            values = {**ann.attributes, "background": scene.background}
            for name in HEADS:
                targets[name].append(labels[name].index(values[name]))
    return {k: torch.stack(v) for k, v in views.items()}, {k: torch.tensor(v) for k, v in targets.items()}


def judge_accuracy(judge: AttributeJudge, views: Views, targets: dict[str, torch.Tensor]) -> dict[str, float]:
    """Accuracy per head."""
    judge.eval()
    with torch.no_grad():
        logits = judge(views)
    return {name: float((logits[name].argmax(1) == targets[name]).float().mean()) for name in HEADS}


def train_attribute_judge(
    world: str | Path, steps: int = 300, batch_size: int = 128, lr: float = 3e-3, seed: int = 0
) -> tuple[AttributeJudge, dict[str, Any]]:
    """A judge trained on the train split; its accuracy per head on the val split."""
    torch.manual_seed(seed)
    views, targets = judge_examples(world, "train")
    judge = AttributeJudge(judge_labels()).train()
    opt = torch.optim.AdamW(judge.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(targets["color"])
    for _ in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        logits = judge({k: v[idx] for k, v in views.items()})
        loss = sum(F.cross_entropy(logits[name], targets[name][idx]) for name in HEADS)
        opt.zero_grad()
        loss.backward()
        opt.step()
    val = judge_examples(world, "val")
    return judge.eval(), {"steps": steps, "objects": n, "val_accuracy": judge_accuracy(judge, *val)}
