"""Linear probes of what each consumer of a CLIP's image tower reads (issue 32).

A tower can carry an attribute in its pooled embedding and lose it in the tokens a consumer
reads, or the other way round. So each consumer's own input is probed, per object of a
FineShapes scene (its exact visible mask):

- `captioner`: the image tokens the captioner attends to (`Clip.encode_image_tokens`: a conv
  tower's last stage cells, a ViT's patches), mask-pooled;
- `llava`: the LLaVA's image tokens (a conv tower's cells of the stage `build_lvlm` picks by
  default, the 1/16 map; a ViT's patches), mask-pooled;
- `region`: what the region extractor pools, the mask pool of each of the four stage maps,
  concatenated (before its learned per-level projections).

The region extractor's input is pooled with its own `mask_pool` (the mask resized to each map
and binarised, as Osprey does: at a coarse map it takes in every cell the mask touches). The
captioner and the LLaVA attend to all tokens and pool nothing; for them the probe weighs each
cell by the share of it the object covers.

Per attribute (shape, colour, size, pattern): a multinomial logistic regression (scikit-
learn, L-BFGS, standardised features, as CLIP's linear-probe protocol) fitted on the objects
of one set of images and scored on the objects of others. Relations: a pairwise probe on the
two objects' pooled features concatenated, predicting the spatial relation (left of, right
of, above, below) and, separately, occlusion (in front of or behind, over the pairs that
overlap: a balanced choice). The pooled
features carry no coordinates the probe could read off the mask, so a relation is found only
if the tower's features say where things are (a LLaVA's language model adds token order,
which this probe does not see: for it the figure is a lower bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from finevl.language.facts import scene_from_record
from finevl.models.clip import Clip
from finevl.models.region import mask_pool
from finevl.train.scene_heads import DENSE_ATTRIBUTES


@dataclass
class ProbeSet:
    """Per object: each consumer's pooled features and its attributes; per ordered pair of
    objects of one image: the two rows and the relations."""

    features: dict[str, np.ndarray]  # consumer -> (objects, dim)
    labels: dict[str, list[str]]  # attribute -> per object
    pairs: list[tuple[int, int, str, str]]  # (row i, row j, spatial relation, occlusion)


def _grid(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) tokens of a square grid (a leading CLS dropped) as (B, C, s, s) maps."""
    n = tokens.shape[1]
    side = int(round(n**0.5))
    if side * side != n:
        tokens, side = tokens[:, 1:], int(round((n - 1) ** 0.5))
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)


def consumer_maps(clip: Clip, pixels: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Each consumer's input as spatial maps for (B, 3, S, S) model-ready pixels."""
    from finevl.models.clip import res4_level

    with torch.inference_mode():
        out = {"captioner": [_grid(clip.encode_image_tokens(pixels).float().cpu())]}
        trunk = getattr(getattr(clip.inner, "visual", None), "trunk", None)
        if trunk is not None and hasattr(trunk, "forward_intermediates"):
            maps = [
                m.float().cpu()
                for m in trunk.forward_intermediates(
                    pixels.to(clip.device, clip.dtype), intermediates_only=True
                )
            ]
            stage = res4_level(trunk.feature_info)
            out["llava"], out["region"] = [maps[stage]], maps
        else:  # a ViT LLaVA reads the patch tokens too
            out["llava"] = out["captioner"]
    return out


def _pool(consumer: str, maps: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
    """(R, sum C) each mask's pool of each (C, h, w) map: the region extractor's own
    `mask_pool` for it, cells weighted by the object's share of them for the others."""
    if consumer == "region":
        return torch.cat([mask_pool(m.expand(len(masks), -1, -1, -1), masks) for m in maps], -1)
    parts = []
    for m in maps:
        small = F.interpolate(masks[:, None].float(), size=m.shape[-2:], mode="area")[:, 0]
        weights = small / small.sum((-1, -2), keepdim=True).clamp(min=1e-8)
        parts.append(torch.einsum("chw,rhw->rc", m, weights))
    return torch.cat(parts, -1)


def probe_set(
    clip: Clip, images: torch.Tensor, owners: torch.Tensor, scenes: list[dict[str, Any]]
) -> ProbeSet:
    """Pooled features of every object of `images` (uint8, model size) with owner maps."""
    feats: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[str]] = {a: [] for a in DENSE_ATTRIBUTES}
    pairs: list[tuple[int, int, str, str]] = []
    row = 0
    for start in range(0, len(images), 64):
        maps = consumer_maps(clip, clip.normalize_pixels(images[start : start + 64]))
        for b in range(min(64, len(images) - start)):
            n = start + b
            record = scenes[n]
            objects = len(record["objects"])
            masks = torch.stack([owners[n] == k for k in range(objects)])
            for name, ms in maps.items():
                feats.setdefault(name, []).append(_pool(name, [m[b] for m in ms], masks).cpu().numpy())
            for obj in record["objects"]:
                for a in DENSE_ATTRIBUTES:
                    labels[a].append(obj[a])
            scene = scene_from_record(record)
            for i in range(objects):
                for j in range(objects):
                    if i != j:
                        rels = scene.relations(i, j)
                        occlusion = rels[1] if len(rels) > 1 else "none"
                        pairs.append((row + i, row + j, rels[0], occlusion))
            row += objects
    return ProbeSet({k: np.concatenate(v) for k, v in feats.items()}, labels, pairs)


def _fit_score(x_train: np.ndarray, y_train: list[str], x_test: np.ndarray, y_test: list[str]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))
    probe.fit(x_train, y_train)
    return round(float(probe.score(x_test, y_test)), 4)


def probe_consumers(train: ProbeSet, test: ProbeSet) -> dict[str, dict[str, float]]:
    """Per consumer, test accuracy of each attribute's probe and of the two relation probes."""
    out: dict[str, dict[str, float]] = {}
    for name in train.features:
        xtr, xte = train.features[name], test.features[name]
        scores = {a: _fit_score(xtr, train.labels[a], xte, test.labels[a]) for a in DENSE_ATTRIBUTES}
        ptr, pte = _pair_features(xtr, train.pairs), _pair_features(xte, test.pairs)
        scores["relation_spatial"] = _fit_score(
            ptr, [p[2] for p in train.pairs], pte, [p[2] for p in test.pairs]
        )
        otr, ote = _overlapping(train.pairs), _overlapping(test.pairs)
        scores["relation_occlusion"] = _fit_score(
            _pair_features(xtr, otr), [p[3] for p in otr], _pair_features(xte, ote), [p[3] for p in ote]
        )
        out[name] = scores
    out["majority"] = {a: _majority(test.labels[a]) for a in DENSE_ATTRIBUTES}
    out["majority"]["relation_spatial"] = _majority([p[2] for p in test.pairs])
    out["majority"]["relation_occlusion"] = _majority([p[3] for p in _overlapping(test.pairs)])
    return out


def _majority(labels: list[str]) -> float:
    """The share of the commonest label: what a probe that learned nothing scores."""
    values, counts = np.unique(labels, return_counts=True)
    return round(float(counts.max() / counts.sum()), 4) if len(values) else 0.0


def _overlapping(pairs: list[tuple[int, int, str, str]]) -> list[tuple[int, int, str, str]]:
    """Pairs where one object covers the other: in front of or behind, balanced by symmetry."""
    return [p for p in pairs if p[3] != "none"]


def _pair_features(x: np.ndarray, pairs: list[tuple[int, int, str, str]]) -> np.ndarray:
    return np.concatenate([x[[p[0] for p in pairs]], x[[p[1] for p in pairs]]], 1)
