"""Moderation by natural-language criteria.

A policy lists criteria in plain words, each with contrast prompts. An image's score for a
criterion is the probability CLIP gives its prompts against the contrasts (softmax of
100 * cosine over the ensembled prompt and contrast embeddings). A threshold per criterion
is calibrated on a small labelled set (the one that maximises F1), and flags are
score >= threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field, ValidationError

from finevl.apps.config import ModerateConfig
from finevl.apps.search import collect_images
from finevl.data.files import claim_outputs
from finevl.data.formats import in_split, read_finecap
from finevl.data.images import ImageLoader
from finevl.data.jsonio import write_result
from finevl.errors import FinevlError
from finevl.models.clip import Clip, load_placed_clip
from finevl.models.device import dtype_name

DEMO_POLICY = Path(__file__).parent / "policies" / "fineshapes.yaml"


class Criterion(BaseModel):
    name: str = Field(min_length=1)
    prompts: list[str] = Field(min_length=1)
    contrasts: list[str] = Field(min_length=1)
    threshold: float | None = None
    label: str | None = None  # how to read the truth from a FineShapes world


class Policy(BaseModel):
    criteria: list[Criterion] = Field(min_length=1)


def load_policy(path: str | Path) -> Policy:
    """A policy YAML file, validated."""
    from finevl.data.jsonio import read_yaml

    path = Path(path)
    data = read_yaml(path)
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise FinevlError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def _ensemble(clip: Clip, prompts: list[str]) -> torch.Tensor:
    return torch.nn.functional.normalize(clip.embed_texts(prompts).mean(0), dim=-1)


def criterion_scores(clip: Clip, policy: Policy, image_features: torch.Tensor) -> dict[str, torch.Tensor]:
    """(N,) probability of each criterion for unit image features."""
    out = {}
    for c in policy.criteria:
        classes = torch.stack([_ensemble(clip, c.prompts), *(_ensemble(clip, [t]) for t in c.contrasts)])
        out[c.name] = (100.0 * image_features @ classes.T).softmax(dim=-1)[:, 0]
    return out


def best_threshold(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """The threshold among the observed scores with the best F1 (ties: the higher one)."""
    best, best_f1 = 0.5, -1.0
    for t in sorted(set(scores.tolist())):
        f1 = precision_recall(scores >= t, truth)["f1"]
        if f1 >= best_f1:
            best, best_f1 = t, f1
    return best


def precision_recall(flags: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    tp = (flags & truth).sum().item()
    precision = tp / max(1, flags.sum().item())
    recall = tp / max(1, truth.sum().item())
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(1e-12, precision + recall),
    }


@dataclass
class WorldLabels:
    """Truth of policy labels (`shape=star`, `color=red`, `background=night`, `text`) for
    each image of a FineShapes world, read from `finecap.json`'s scene records."""

    image_ids: list[int]
    file_names: list[str]
    scenes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, world: str | Path, split: str) -> WorldLabels:
        world = Path(world)
        recs = read_finecap(world / "finecap.json")
        wanted = set(in_split(world, split, [r.image_id for r in recs]))
        recs = [r for r in recs if r.image_id in wanted and r.scene]
        if not recs:
            raise FinevlError(f"{world}: no images with scene records in split {split!r}")
        return cls([r.image_id for r in recs], [r.file_name for r in recs], [r.scene for r in recs])  # type: ignore[misc]

    def truth(self, label: str) -> torch.Tensor:
        key, _, value = label.partition("=")
        if key == "text":
            return torch.tensor([s.get("text") is not None for s in self.scenes])
        if key == "background":
            return torch.tensor([s["background"] == value for s in self.scenes])
        if key in ("shape", "color", "size", "pattern"):
            return torch.tensor([any(o[key] == value for o in s["objects"]) for s in self.scenes])
        raise FinevlError(
            f"unknown policy label {label!r} (shape=, color=, size=, pattern=, background=, text)"
        )


def labelled_set(
    source: str | Path, policy: Policy, split: str
) -> tuple[list[Path], dict[str, torch.Tensor]]:
    """(image paths, truth per criterion) from a FineShapes world (criteria's `label`) or a
    JSONL file of `{"image": path, "labels": {criterion: true/false}}`."""
    from finevl.data.jsonio import iter_jsonl

    source = Path(source)
    if source.is_dir():
        labels = WorldLabels.load(source, split)
        missing = [c.name for c in policy.criteria if not c.label]
        if missing:
            raise FinevlError(f"criterion {missing[0]!r} has no `label` to read its truth from a world")
        paths = [source / "images" / f for f in labels.file_names]
        return paths, {c.name: labels.truth(c.label) for c in policy.criteria}  # type: ignore[arg-type]
    rows = [(n, r) for n, r in iter_jsonl(source)]
    if not rows:
        raise FinevlError(f"{source}: no labelled images")
    truth: dict[str, list[bool]] = {c.name: [] for c in policy.criteria}
    for lineno, r in rows:
        for c in policy.criteria:
            if not isinstance(r.get("labels", {}).get(c.name), bool):
                raise FinevlError(f"{source}: line {lineno}: no true/false label for {c.name!r}")
            truth[c.name].append(r["labels"][c.name])
    paths = [source.parent / r["image"] for _, r in rows]
    return paths, {k: torch.tensor(v) for k, v in truth.items()}


def calibrate(policy: Policy, scores: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]) -> Policy:
    """The policy with each criterion's F1-best threshold on a labelled set."""
    criteria = [
        c.model_copy(update={"threshold": best_threshold(scores[c.name], truth[c.name])})
        for c in policy.criteria
    ]
    return Policy(criteria=criteria)


def evaluate(
    policy: Policy, scores: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Precision, recall and F1 of each criterion's flags at its threshold."""
    return {
        c.name: {
            **precision_recall(scores[c.name] >= _threshold(c), truth[c.name]),
            "threshold": _threshold(c),
            "positives": int(truth[c.name].sum()),
        }
        for c in policy.criteria
    }


def _threshold(c: Criterion) -> float:
    return 0.5 if c.threshold is None else c.threshold


def flag_images(policy: Policy, scores: dict[str, torch.Tensor], names: list[str]) -> list[dict[str, Any]]:
    """Per image: each criterion's score and flag."""
    return [
        {
            "image": name,
            "scores": {c.name: round(float(scores[c.name][k]), 6) for c in policy.criteria},
            "flags": [c.name for c in policy.criteria if scores[c.name][k] >= _threshold(c)],
        }
        for k, name in enumerate(names)
    ]


def score_paths(
    clip: Clip,
    policy: Policy,
    paths: list[Path],
    loader: Any,
    truth: dict[str, torch.Tensor] | None = None,
    batch_size: int = 256,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """(scores, truth, names) of the readable images among `paths` (bad ones skipped per
    the loader's policy, their truth dropped with them)."""
    feats, kept = [], []
    for i in range(0, len(paths), batch_size):
        loaded = [(k, loader(p)) for k, p in enumerate(paths[i : i + batch_size], start=i)]
        loaded = [(k, im) for k, im in loaded if im is not None]
        if loaded:
            feats.append(clip.embed_images([im for _, im in loaded]))
            kept += [k for k, _ in loaded]
    if not kept:
        raise FinevlError("no readable images to moderate")
    scores = criterion_scores(clip, policy, torch.cat(feats))
    index = torch.tensor(kept)
    return scores, {k: v[index] for k, v in (truth or {}).items()}, [str(paths[k]) for k in kept]


def save_policy(policy: Policy, path: str | Path) -> None:
    """Write a (calibrated) policy as YAML, atomically."""
    import yaml

    from finevl.data.jsonio import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(policy.model_dump(exclude_none=True), sort_keys=False))


def write_flags_csv(path: str | Path, policy: Policy, rows: list[dict[str, Any]]) -> None:
    """Per image: a score column and a flag column per criterion."""
    from finevl.data.jsonio import write_csv_atomic

    names = [c.name for c in policy.criteria]
    write_csv_atomic(
        path,
        [
            {
                "image": r["image"],
                **{f"{n}_score": r["scores"][n] for n in names},
                **{f"{n}_flag": int(n in r["flags"]) for n in names},
            }
            for r in rows
        ],
    )


def moderate_command(cfg: ModerateConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl moderate`: a policy (calibrated on `cfg.calibrate` when given) applied to
    images, evaluated on `cfg.evaluate`; results also written to `cfg.out` and `cfg.csv_out`."""
    claim_outputs(overwrite, cfg.out, cfg.csv_out, cfg.save_policy)
    policy = load_policy(cfg.policy or DEMO_POLICY)
    clip = load_placed_clip(cfg.model, cfg.weights, cfg.device, cfg.dtype)
    loader = ImageLoader(cfg.on_bad_image)  # type: ignore[arg-type]
    result: dict[str, Any] = {"model": cfg.model, "task": "moderation", "dtype": dtype_name(clip.dtype)}
    if cfg.calibrate is not None:
        paths, labels = labelled_set(cfg.calibrate, policy, cfg.calibrate_split)
        scores, truth, _ = score_paths(clip, policy, paths, loader, labels)
        policy = calibrate(policy, scores, truth)
        if cfg.save_policy:
            save_policy(policy, cfg.save_policy)
    if cfg.evaluate is not None:
        paths, labels = labelled_set(cfg.evaluate, policy, cfg.evaluate_split)
        scores, truth, _ = score_paths(clip, policy, paths, loader, labels)
        result["metrics"] = evaluate(policy, scores, truth)
    if cfg.images:
        scores, _, names = score_paths(clip, policy, collect_images(cfg.images), loader)
        result["images"] = flag_images(policy, scores, names)
        if cfg.csv_out is not None:
            write_flags_csv(cfg.csv_out, policy, result["images"])
    result["thresholds"] = {c.name: c.threshold for c in policy.criteria}
    return write_result(result, cfg.out)
