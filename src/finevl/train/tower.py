"""Supervised training of a CLIP's image tower on a world's attributes.

Two uses, one loop:
- the probe that tells whether a tower can see before anything is built on it: a linear
  head on a frozen tower (`freeze=True`: what a trained CLIP's tower carries), or the tower
  trained with the head (what the architecture can learn in a budget);
- the image side of locked-image tuning (LiT, Zhai et al. 2022): the tower trained here is
  then locked while `finevl clip train --lock-image` teaches the text tower to read it.

Targets come from the world's scene records (`finecap.json`): for each object attribute
(shape, colour, size, pattern) a multi-hot vector of the values present in the image, and the
background one-hot; per attribute, a softmax cross-entropy against the values present (shared
equally among them), summed over attributes. (A binary cross-entropy per value learned shape
far slower: 0.27 against CE's figure in docs/clip.md, same steps.) Accuracy is measured on the
evaluation split's one-object images (argmax within each attribute), where an object
attribute is unambiguous.

With `dense_weight`, `relation_weight` or `binding_weight`, scene heads
(`train/scene_heads.py`) add supervision from the world's exact masks and scene records:
what each stage-map cell covers, and which relation triples and attribute bindings the
pooled embedding must carry.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finevl.data.formats import FinecapRecord
from finevl.data.imagetext import ImageTextSet, load_image_text
from finevl.data.jsonio import write_json_atomic
from finevl.data.owners import check_owner_sources, owner_maps
from finevl.errors import FinevlError
from finevl.models.clip import Clip, load_clip, stage_tower
from finevl.train.config import TowerTrainConfig
from finevl.train.scene_heads import SceneHeads, SceneTargets, scene_accuracy
from finevl.train.trainer import Trainer

logger = logging.getLogger(__name__)

OBJECT_ATTRIBUTES = ("shape", "color", "size", "pattern")
HEAD_FILE = "attribute_head.safetensors"
SCENE_HEADS_FILE = "scene_heads.safetensors"


def attribute_values(fine: list[FinecapRecord | None], attributes: list[str]) -> dict[str, list[str]]:
    """Each attribute's values seen in the data, sorted (the head's columns)."""
    values: dict[str, set[str]] = {a: set() for a in attributes}
    for record in fine:
        scene = _scene(record)
        for a in attributes:
            values[a].update(_present(scene, a))
    return {a: sorted(v) for a, v in values.items()}


def attribute_targets(fine: list[FinecapRecord | None], values: dict[str, list[str]]) -> torch.Tensor:
    """(N, V) multi-hot targets: 1 where the image shows that value (any of its objects)."""
    columns = {(a, v): k for k, (a, v) in enumerate((a, v) for a, vs in values.items() for v in vs)}
    targets = torch.zeros(len(fine), len(columns))
    for i, record in enumerate(fine):
        scene = _scene(record)
        for a in values:
            for v in _present(scene, a):
                if (a, v) in columns:
                    targets[i, columns[(a, v)]] = 1.0
    return targets


def _scene(record: FinecapRecord | None) -> dict[str, Any]:
    if record is None or not record.scene:
        raise FinevlError("attribute training needs a world's scene records (finecap.json with scenes)")
    return record.scene


def _present(scene: dict[str, Any], attribute: str) -> set[str]:
    if attribute == "background":
        return {scene["background"]}
    if attribute not in OBJECT_ATTRIBUTES:
        raise FinevlError(
            f"unknown attribute {attribute!r} (one of background, {', '.join(OBJECT_ATTRIBUTES)})"
        )
    return {obj[attribute] for obj in scene["objects"]}


class AttributeProbe(nn.Module):
    """A CLIP whose image embedding feeds one linear head over every attribute's values."""

    def __init__(self, clip: Clip, values: dict[str, list[str]], scene: SceneHeads | None = None):
        super().__init__()
        self.clip, self.values, self.scene = clip, values, scene
        self.head = nn.Linear(embedding_dim(clip), sum(len(v) for v in values.values()))
        self.columns: dict[str, slice] = {}  # each attribute's logit columns
        start = 0
        for a, vs in values.items():
            self.columns[a] = slice(start, start + len(vs))
            start += len(vs)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, V) attribute logits."""
        return self.head(self.clip.encode_image(pixels, normalize=False))

    def forward_scene(
        self, pixels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor], torch.Tensor]:
        """(attribute logits, the dense heads' stage maps by index, the unnormalised
        embedding), from one pass through the trunk (open_clip timm towers)."""
        assert self.scene is not None
        visual = self.clip.inner.visual
        x = pixels.to(self.clip.device, self.clip.dtype)
        maps = visual.trunk.forward_intermediates(x, intermediates_only=True)
        embedding = visual.head(visual.trunk.forward_head(maps[-1]))
        wanted = {int(k): maps[int(k)] for k in self.scene.dense}
        return self.head(embedding), wanted, embedding

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sum over attributes of the cross-entropy against the present values' share."""
        total = logits.new_zeros(())
        for cols in self.columns.values():
            share = targets[:, cols] / targets[:, cols].sum(-1, keepdim=True).clamp(min=1)
            total = total + F.cross_entropy(logits[:, cols], share)
        return total

    def save(self, out_dir: str | Path) -> Path:
        """The CLIP in its own layout, the head beside its weights (open_clip ignores it)."""
        from safetensors.torch import save_file

        out = self.clip.save(out_dir)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, out / HEAD_FILE)
        if self.scene is not None:
            save_file({k: v.contiguous() for k, v in self.scene.state_dict().items()}, out / SCENE_HEADS_FILE)
        return out

    def load_head(self, model_dir: Path) -> None:
        """The heads a resumed (or continued) run saved beside its model, where they fit."""
        from safetensors.torch import load_file

        for module, name in ((self.head, HEAD_FILE), (self.scene, SCENE_HEADS_FILE)):
            if module is None or not (model_dir / name).is_file():
                continue
            state = load_file(str(model_dir / name))
            mine = module.state_dict()
            if all(k in mine and mine[k].shape == v.shape for k, v in state.items()):
                module.load_state_dict(state, strict=False)
                logger.info("%s: heads loaded from %s", name, model_dir)
            else:
                logger.warning("%s in %s does not fit these heads: they start fresh", name, model_dir)

    @torch.inference_mode()
    def accuracy(
        self, images: torch.Tensor, targets: torch.Tensor, one_object: torch.Tensor
    ) -> dict[str, Any]:
        """Top-1 accuracy per attribute on the one-object images (background on all); None
        where the split has no such image."""
        was = self.training
        self.eval()
        logits = torch.cat(
            [self(self.clip.normalize_pixels(images[i : i + 256])) for i in range(0, len(images), 256)]
        )
        self.train(was)
        result = {}
        for a, cols in self.columns.items():
            keep = torch.ones_like(one_object) if a == "background" else one_object
            hit = logits[keep, cols].argmax(-1) == targets[keep, cols].argmax(-1)
            result[a] = {
                "acc1": round(hit.float().mean().item(), 4) if len(hit) else None,  # no one-object image
                "images": int(keep.sum()),
                "classes": cols.stop - cols.start,
            }
        return result


def embedding_dim(clip: Clip) -> int:
    blank = torch.zeros(1, 3, clip.image_size, clip.image_size)
    with torch.no_grad():
        return clip.encode_image(blank, normalize=False).shape[-1]


def _one_object(data: ImageTextSet) -> torch.Tensor:
    return torch.tensor([len(_scene(r)["objects"]) == 1 for r in data.fine])


def _scene_targets(
    data: str, split: str | None, images: ImageTextSet, side: int, grids: dict[int, int]
) -> SceneTargets:
    """The scene heads' targets; the masks are read only where a dense head needs them."""
    owners = owner_maps(data, side, split) if grids else torch.full((len(images), 1, 1), -1, dtype=torch.int8)
    if len(owners) != len(images):
        raise FinevlError(f"{data}: {len(owners)} instance maps for {len(images)} images")
    return SceneTargets.of(owners, [_scene(r) for r in images.fine], grids)


def _scene_heads(cfg: TowerTrainConfig, clip: Clip) -> tuple[SceneHeads | None, dict[int, int]]:
    if not (cfg.dense_weight or cfg.relation_weight or cfg.binding_weight):
        return None, {}
    info = stage_tower(clip, "scene supervision").feature_info  # four stages: the settings' 0-3 fit
    stages = cfg.stage_indices()
    grids = {k: clip.image_size // info[k]["reduction"] for k in stages}
    heads = SceneHeads(
        {k: info[k]["num_chs"] for k in stages},
        embedding_dim(clip),
        cfg.relation_weight > 0,
        cfg.binding_weight > 0,
    )
    return heads, grids


def train_tower(
    cfg: TowerTrainConfig, resume: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Train the attribute head (and, unless `freeze`, the image tower; with scene weights,
    the dense, relation and binding heads too); the summary holds per-attribute test
    accuracy on one-object images and the scene heads' accuracies (also `run/probe.json`;
    relation and binding figures need many-object images in the evaluation data)."""
    if cfg.dense_weight:  # before the run folder exists
        check_owner_sources(cfg.data)
        check_owner_sources(cfg.eval_data or cfg.data)
    trainer = Trainer(cfg, resume)
    torch.manual_seed(cfg.seed)
    clip = load_clip(trainer.start_model)
    attributes = [a.strip() for a in cfg.attributes.split(",") if a.strip()]
    heads, grids = _scene_heads(cfg, clip)
    train = load_image_text(cfg.data, clip.image_size, split=cfg.split)
    eval_data = cfg.eval_data or cfg.data
    test = load_image_text(eval_data, clip.image_size, split=cfg.eval_split)
    scene_train = _scene_targets(cfg.data, cfg.split, train, clip.image_size, grids) if heads else None
    probe = AttributeProbe(clip, attribute_values(train.fine, attributes), heads)
    continued = Path(trainer.start_model) != Path(cfg.model) or not cfg.freeze
    if continued and Path(trainer.start_model).is_dir():  # a resumed or continued run; a probe starts fresh
        probe.load_head(Path(trainer.start_model))
    for p in clip.parameters():
        p.requires_grad = False
    if not cfg.freeze:
        for p in clip.inner.visual.parameters():
            p.requires_grad = True
    probe.train()
    if cfg.freeze:
        clip.eval()  # a frozen tower's batch-norm statistics stay as they are
    targets = attribute_targets(train.fine, probe.values)
    trainer.setup(probe)

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        pixels = clip.normalize_pixels(train.images[idx].to(trainer.device))
        if heads is None or scene_train is None:
            return probe.loss(probe(pixels), targets[idx].to(trainer.device))
        logits, maps, embedding = probe.forward_scene(pixels)
        scene = scene_train.rows(idx, trainer.device)
        loss = probe.loss(logits, targets[idx].to(trainer.device))
        if cfg.dense_weight:
            loss = loss + cfg.dense_weight * heads.dense_loss(maps, scene.cells)
        if cfg.relation_weight:
            loss = loss + cfg.relation_weight * heads.relation_loss(embedding, scene.triples)
        if cfg.binding_weight:
            loss = loss + cfg.binding_weight * heads.binding_loss(embedding, scene.bindings)
        return loss

    summary = trainer.fit(trainer.shares(len(train)), loss_of, progress)
    metrics = probe.accuracy(test.images, attribute_targets(test.fine, probe.values), _one_object(test))
    if heads is not None:
        metrics["scene"] = _scene_metrics(
            probe, test, _scene_targets(eval_data, cfg.eval_split, test, clip.image_size, grids)
        )
    result = {
        "task": "attribute_probe",
        "model": str(cfg.model),
        "dataset": str(eval_data),
        "split": cfg.eval_split,
        "mode": "linear probe (tower frozen)" if cfg.freeze else "tower trained",
        "metrics": metrics,
        **summary,
    }
    write_json_atomic(trainer.folder / "probe.json", result)
    return result


def _scene_metrics(probe: AttributeProbe, test: ImageTextSet, scene: SceneTargets) -> dict[str, Any]:
    """The scene heads' accuracies on the evaluation images, in batches of 256."""
    was = probe.training
    probe.eval()
    maps: dict[int, list[torch.Tensor]] = {}
    embeddings = []
    with torch.inference_mode():
        for i in range(0, len(test), 256):
            _, m, e = probe.forward_scene(probe.clip.normalize_pixels(test.images[i : i + 256]))
            embeddings.append(e.float().cpu())
            for k, v in m.items():
                maps.setdefault(k, []).append(v.float().cpu())
    probe.train(was)
    assert probe.scene is not None
    heads = copy.deepcopy(probe.scene).float().cpu()  # the live heads stay where they train
    return scene_accuracy(
        heads,
        {k: torch.cat(v) for k, v in maps.items()},
        torch.cat(embeddings),
        scene.cells,
        scene.triples,
        scene.bindings,
    )
