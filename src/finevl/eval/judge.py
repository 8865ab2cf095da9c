"""Train the attribute judge of the editing benchmark on a world's masks and labels: every
object of a split as its views -> (colour, pattern, size, background). An object is shown
by its silhouette (`world.counterfactual.silhouette`: an outlined shape's hole included)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from finevl.data.coco import CocoInstances
from finevl.data.formats import in_split
from finevl.data.images import load_image
from finevl.models.attribute_judge import HEADS, VIEWS, AttributeJudge, judge_views, load_attribute_judge
from finevl.train.config import RunConfig
from finevl.train.trainer import Trainer
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


@dataclass
class JudgeTrainConfig(RunConfig):
    """Settings of the judge's training: constant AdamW on random batches of objects."""

    steps: int = field(default=300, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=128, metadata={"help": "Objects per step."})
    lr: float = field(default=3e-3, metadata={"help": "Learning rate (constant)."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "Clip the gradient norm; 0: none."})
    model: str = field(default="", metadata={"help": "(internal) the checkpoint to resume from."})


def train_attribute_judge(
    cfg: JudgeTrainConfig, resume: bool = False, progress: Callable[[int], None] | None = None
) -> tuple[AttributeJudge, dict[str, Any]]:
    """A judge trained on the world's train split (`cfg.data`); its accuracy per head on the
    val split."""
    trainer = Trainer(cfg, resume)
    torch.manual_seed(cfg.seed)
    views, targets = judge_examples(cfg.data, cfg.split)
    start = trainer.start_model
    judge = (load_attribute_judge(start) if start else AttributeJudge(judge_labels())).train()
    trainer.setup(judge, constant_lr=True)

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        logits = judge({k: v[idx].to(trainer.device) for k, v in views.items()})
        return sum(F.cross_entropy(logits[name], targets[name][idx].to(trainer.device)) for name in HEADS)

    n = len(targets["color"])
    summary = trainer.fit(trainer.shares(n), loss_of, progress, extra={"objects": n})
    summary["val_accuracy"] = judge_accuracy(judge, *judge_examples(cfg.data, "val"))
    return judge.eval(), trainer.save_summary(summary)
