"""Scene supervision of an image tower from a world's exact ground truth, beside the
attribute head of `train/tower.py`:

- dense heads: each cell of a stage map predicts the shape, colour, size and pattern of the
  object covering most of it, or "no object" (a 1x1 convolution per stage); what the
  consumers that read cells (the LLaVA's image tokens, the region extractor's mask pools,
  the captioner's tokens) need to find there;
- a relation head on the pooled embedding: which (shape, relation, shape) and (colour,
  relation, colour) triples hold in the image, one softmax per family over every triple, the
  target shared among those present (as the attribute head shares among values). Linear on
  the embedding, as a text tower reads it, so relations must survive the pool;
- a binding head on the embedding, the same way: which (colour, shape), (size, shape) and
  (pattern, shape) pairs are objects of the image. A per-attribute head is satisfied by a bag
  of values, which cannot tell "a red star and a blue circle" from "a blue star and a red
  circle" (swap-att); these pairs can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finevl.data.owners import cell_owners
from finevl.language import vocab
from finevl.language.facts import scene_from_record

DENSE_ATTRIBUTES = ("shape", "color", "size", "pattern")
RELATIONS = list(vocab.RELATIONS)
TRIPLE_FAMILIES = {"shape": list(vocab.SHAPES), "color": list(vocab.COLORS)}
BINDINGS = {"color+shape": "color", "size+shape": "size", "pattern+shape": "pattern"}


def _values() -> dict[str, list[str]]:
    """Each dense attribute's values, in `DENSE_ATTRIBUTES` order (the heads' columns)."""
    table = {"shape": vocab.SHAPES, "color": vocab.COLORS, "size": vocab.SIZES, "pattern": vocab.PATTERNS}
    return {a: list(table[a]) for a in DENSE_ATTRIBUTES}


def object_values(scenes: list[dict[str, Any]]) -> torch.Tensor:
    """(N, M, A) each object's value index per dense attribute, +1 (0: no object)."""
    values = _values()
    objects = max((len(s["objects"]) for s in scenes), default=1)
    table = torch.zeros(len(scenes), objects, len(DENSE_ATTRIBUTES), dtype=torch.long)
    for n, scene in enumerate(scenes):
        for k, obj in enumerate(scene["objects"]):
            for a, attr in enumerate(DENSE_ATTRIBUTES):
                table[n, k, a] = values[attr].index(obj[attr]) + 1
    return table


def triple_targets(scenes: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Per family, (N, V*R*V) multi-hot over (value of i, relation, value of j) triples that
    hold between two objects of each image (every relation of every ordered pair)."""
    out = {}
    for family, values in TRIPLE_FAMILIES.items():
        v, r = len(values), len(RELATIONS)
        targets = torch.zeros(len(scenes), v * r * v)
        for n, record in enumerate(scenes):
            scene = scene_from_record(record)
            objs = scene.objects
            for i in range(len(objs)):
                for j in range(len(objs)):
                    if i == j:
                        continue
                    a, b = values.index(getattr(objs[i], family)), values.index(getattr(objs[j], family))
                    for rel in scene.relations(i, j):
                        targets[n, (a * r + RELATIONS.index(rel)) * v + b] = 1.0
        out[family] = targets
    return out


def binding_targets(scenes: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Per binding, (N, V_attr * V_shape) multi-hot over the (value, shape) pairs of objects."""
    values, shapes = _values(), list(vocab.SHAPES)
    out = {}
    for family, attr in BINDINGS.items():
        targets = torch.zeros(len(scenes), len(values[attr]) * len(shapes))
        for n, scene in enumerate(scenes):
            for obj in scene["objects"]:
                targets[n, values[attr].index(obj[attr]) * len(shapes) + shapes.index(obj["shape"])] = 1.0
        out[family] = targets
    return out


def _shared_target_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over families of the cross-entropy against the present classes' share, over the
    images that have any."""
    total = next(iter(logits.values())).new_zeros(())
    for family, lg in logits.items():
        t = targets[family]
        keep = t.sum(-1) > 0
        if keep.any():
            total = total + F.cross_entropy(lg[keep], t[keep] / t[keep].sum(-1, keepdim=True))
    return total


class SceneHeads(nn.Module):
    """Dense heads on chosen stage maps; relation and binding heads on the embedding."""

    def __init__(self, stage_channels: dict[int, int], embed_dim: int, relation: bool, binding: bool = False):
        super().__init__()
        values = _values()
        classes = sum(len(v) + 1 for v in values.values())
        self.dense = nn.ModuleDict({str(k): nn.Conv2d(c, classes, 1) for k, c in stage_channels.items()})
        sizes = {f: len(v) * len(RELATIONS) * len(v) for f, v in TRIPLE_FAMILIES.items()}
        self.relation = (
            nn.ModuleDict({f: nn.Linear(embed_dim, n) for f, n in sizes.items()}) if relation else None
        )
        pairs = {f: len(values[a]) * len(values["shape"]) for f, a in BINDINGS.items()}
        self.binding = (
            nn.ModuleDict({f: nn.Linear(embed_dim, n) for f, n in pairs.items()}) if binding else None
        )
        self.columns, start = {}, 0
        for attr, vs in values.items():
            self.columns[attr] = slice(start, start + len(vs) + 1)
            start += len(vs) + 1

    def dense_loss(self, maps: dict[int, torch.Tensor], cells: dict[int, torch.Tensor]) -> torch.Tensor:
        """Sum over stages and attributes of the mean cell cross-entropy; `cells[k]` is
        (B, h, w, A) target indices on stage k's grid."""
        total = next(iter(maps.values())).new_zeros((), dtype=torch.float32)
        for k, head in self.dense.items():
            logits = head(maps[int(k)]).float()
            for a, cols in enumerate(self.columns.values()):
                total = total + F.cross_entropy(logits[:, cols], cells[int(k)][..., a])
        return total

    def relation_logits(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.relation is not None
        return {f: head(embedding).float() for f, head in self.relation.items()}

    def relation_loss(self, embedding: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per family, the cross-entropy against the present triples' share, over images
        with at least two objects (the others have no relation)."""
        return _shared_target_loss(self.relation_logits(embedding), targets)

    def binding_logits(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.binding is not None
        return {f: head(embedding).float() for f, head in self.binding.items()}

    def binding_loss(self, embedding: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per binding, the cross-entropy against the present pairs' share."""
        return _shared_target_loss(self.binding_logits(embedding), targets)


def cell_targets(
    owners: torch.Tensor, values: torch.Tensor, grids: dict[int, int]
) -> dict[int, torch.Tensor]:
    """Per stage k, (N, h, w, A) dense targets: the covering object's value indices +1, or 0."""
    out = {}
    padded = torch.cat([torch.zeros_like(values[:, :1]), values], 1)  # owner -1 -> row 0
    for k, side in grids.items():
        owner = cell_owners(owners, side, values.shape[1]) + 1  # (N, h, w), 0 = background
        out[k] = padded[torch.arange(len(values))[:, None, None], owner]
    return out


@torch.inference_mode()
def scene_accuracy(
    heads: SceneHeads,
    maps: dict[int, torch.Tensor],
    embedding: torch.Tensor,
    cells: dict[int, torch.Tensor],
    triples: dict[str, torch.Tensor],
    bindings: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Dense: per stage and attribute, accuracy on the cells an object covers. Relations:
    per family, the share of true spatial triples (a, r, b) scored above (a, inverse r, b),
    the choice a replace-rel caption pair poses. Bindings: the share of an image's true
    pairs among its top-k scored pairs (k = its object count)."""
    out: dict[str, Any] = {}
    for k, head in heads.dense.items():
        logits, target = head(maps[int(k)]).float(), cells[int(k)]
        on_object = target[..., 0] > 0
        out[f"dense_stage{k}"] = {
            attr: round(
                (logits[:, cols].argmax(1)[on_object] == target[..., a][on_object]).float().mean().item(), 4
            )
            for a, (attr, cols) in enumerate(heads.columns.items())
        }
    if heads.binding is not None and bindings is not None:
        out["binding_top"] = {
            family: _top_k_recall(logits, bindings[family])
            for family, logits in heads.binding_logits(embedding).items()
        }
    if heads.relation is not None:
        out["relation_pairs"] = {
            family: _pair_accuracy(logits, triples[family], len(TRIPLE_FAMILIES[family]))
            for family, logits in heads.relation_logits(embedding).items()
        }
    return out


def _top_k_recall(logits: torch.Tensor, targets: torch.Tensor) -> float | None:
    hits, total = 0, 0
    for lg, t in zip(logits, targets, strict=True):
        k = int(t.sum())
        if k:
            hits += int(t[lg.topk(k).indices].sum())
            total += k
    return round(hits / total, 4) if total else None


def _pair_accuracy(logits: torch.Tensor, targets: torch.Tensor, v: int) -> float | None:
    r = len(RELATIONS)
    inverse = [RELATIONS.index(vocab.INVERSE_RELATION[rel]) for rel in RELATIONS]
    lg = logits.view(-1, v, r, v)
    tg = targets.view(-1, v, r, v)
    spatial = torch.tensor([rel not in ("in front of", "behind") for rel in RELATIONS])
    # pairs whose inverse also holds (two stars, one left of the other) pose no choice
    asked = (tg > 0) & (tg[:, :, inverse, :] == 0) & spatial[None, None, :, None]
    hits = (lg > lg[:, :, inverse, :])[asked]
    return round(hits.float().mean().item(), 4) if len(hits) else None


@dataclass
class SceneTargets:
    """Dense, relation and binding targets of a data set, for the scene heads."""

    cells: dict[int, torch.Tensor]
    triples: dict[str, torch.Tensor]
    bindings: dict[str, torch.Tensor]

    @classmethod
    def of(cls, owners: torch.Tensor, scenes: list[dict[str, Any]], grids: dict[int, int]) -> SceneTargets:
        """From owner maps (`data/owners.py`) and scene records, on each stage's grid."""
        return cls(
            cell_targets(owners, object_values(scenes), grids),
            triple_targets(scenes),
            binding_targets(scenes),
        )

    def rows(self, idx: torch.Tensor, device: torch.device) -> SceneTargets:
        return SceneTargets(
            {k: v[idx].to(device) for k, v in self.cells.items()},
            {k: v[idx].to(device) for k, v in self.triples.items()},
            {k: v[idx].to(device) for k, v in self.bindings.items()},
        )
