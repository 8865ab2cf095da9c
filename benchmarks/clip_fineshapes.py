"""CLIP towers that see (issue 23): a tiny CLIP trained on FineShapes in a time budget with one
recipe, then measured per seed and as mean ± std over seeds:

- zero-shot top-1 on shape, colour, size and pattern (one-object test images of a world it
  never trained on), background on the main world's test split;
- text-to-image R@1 on 1,000 held-out test images with their fine captions (chance 0.1 %);
- the compositional benchmark (`finevl clip compose` on the test split) with its text-only
  baseline.

Recipes (`--recipe`):
- `contrastive`: `clip train` from the preset for the whole budget;
- `lit`: `clip tower` trains the image tower on a one-object world's attributes
  (`--tower-minutes`), then `clip train --lock-image` teaches a text tower to read it.
Towers that see where things are (issue 32): `--scene-images N` adds a many-object world of N
images (seed 4, never evaluated on) to the tower's data, and `--dense-weight`,
`--relation-weight`, `--binding-weight` turn on its scene heads (docs/clip.md, "Relations in
the tower"); `--unlock-image-head` lets the tower's projection learn in the text stage.
`--hard-negatives K` and `--group-by background` add NegCLIP negatives and grouped batches
to the contrastive stage (the ablation's columns); `--mix-images N` mixes a one-object world
of N images into it, so the text tower also reads one-object captions (size is relative in
a scene: without them the text stage unlearns the tower's size).

    .venv/bin/python benchmarks/clip_fineshapes.py --model finevl-tiny-conv --recipe lit \\
        --seeds 0 1 2 --out benchmarks/results/clip_lit.json

Worlds are generated under --work if missing; runs resume if their folder exists.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from finevl.apps.retrieval import retrieval_eval
from finevl.apps.zeroshot import TEMPLATES, world_labels, zeroshot_classify
from finevl.data.hard_negatives import negative_vocab
from finevl.data.imagetext import load_image_text
from finevl.data.jsonio import read_json, write_json_atomic
from finevl.eval.compose import compose_eval
from finevl.language.grammar import caption_is_false
from finevl.metrics.seeds import mean_std
from finevl.models.clip import Clip, load_clip
from finevl.train.config import ClipTrainConfig, TowerTrainConfig
from finevl.train.contrastive import train_clip
from finevl.train.tower import train_tower
from finevl.world.compose import world_pairs
from finevl.world.config import WorldConfig
from finevl.world.generate import generate_world

LABELS = ("shape", "color", "size", "pattern")
TARGETS = {"shape": 0.95, "color": 0.95, "pattern": 0.85, "size": 0.85}


def ensure_world(path: Path, **config: Any) -> Path:
    if not (path / "world.json").is_file():
        generate_world(WorldConfig(**config), path, overwrite=True)
    return path


def _done(summary: Path) -> dict[str, Any] | None:
    """A finished run's summary: the benchmark measures it again without retraining."""
    return read_json(summary) if summary.is_file() else None


def train(args: argparse.Namespace, seed: int, worlds: dict[str, Path]) -> tuple[Path, dict[str, Any]]:
    """The recipe's runs for one seed; (the CLIP's model folder, timings)."""
    work, tag = Path(args.work), f"{args.model}-{args.recipe}"
    precision = f"-{args.precision}" if args.precision != "fp32" else ""  # fp32 runs keep their old names
    tower_tag = f"t{args.tower_images}x{args.tower_steps}"
    tower_tag += f"b{args.tower_batch}" if args.tower_batch != 128 else ""
    if args.scene_images:
        weights = (args.dense_weight, args.relation_weight, args.binding_weight)
        tower_tag += f"-scene{args.scene_images}-d{weights[0]:g}r{weights[1]:g}b{weights[2]:g}"
    if args.recipe == "lit":
        tag += f"-{tower_tag}"
    tag += f"-k{args.hard_negatives}-{args.group_by or 'random'}"
    tag += (f"-mix{args.mix_images}" if args.mix_images else "") + ("-head" if args.unlock_image_head else "")
    tag += precision
    start, info = args.model, {}
    if args.recipe == "lit":
        tower = work / f"tower-{args.model}-{tower_tag}{precision}-seed{seed}"
        scene = {"dense_weight": args.dense_weight, "relation_weight": args.relation_weight}
        scene["binding_weight"] = args.binding_weight
        warmup = 100 if args.scene_images else 50
        cfg = TowerTrainConfig(
            data=str(worlds["tower"]) + (f"::{worlds['scene']}" if args.scene_images else ""),
            split="train" if args.scene_images else None, out=str(tower), model=args.model,
            steps=args.tower_steps, batch_size=args.tower_batch, warmup_steps=warmup,
            max_minutes=args.tower_minutes, seed=seed, eval_data=str(worlds["one"]), eval_split="test",
            save_every=10_000, precision=args.precision, **(scene if args.scene_images else {}),
        )  # fmt: skip
        summary = _done(tower / "probe.json") or train_tower(cfg, resume=tower.exists())
        info["tower"] = {"seconds": round(summary["seconds"], 1), "steps": summary["steps"]}
        info["tower"]["probe"] = {a: m["acc1"] for a, m in summary["metrics"].items() if "acc1" in m}
        info["tower"]["scene"] = summary["metrics"].get("scene")
        start = str(tower / "checkpoint" / "model")
    run = work / f"clip-{tag}-seed{seed}"
    data = f"{worlds['main']}::{worlds['mix']}" if args.mix_images else str(worlds["main"])
    cfg = ClipTrainConfig(
        data=data, out=str(run), model=start, steps=args.steps, batch_size=128, lr=1e-3,
        warmup_steps=50, max_minutes=args.minutes, save_every=10_000, seed=seed,
        lock_image=args.recipe == "lit", hard_negatives=args.hard_negatives, group_by=args.group_by,
        precision=args.precision, unlock_image_head=args.unlock_image_head,
    )  # fmt: skip
    summary = _done(run / "summary.json") or train_clip(
        cfg, resume=run.exists(), check=caption_is_false, default_vocab=negative_vocab()
    )
    info["clip"] = {"seconds": round(summary["seconds"], 1), "steps": summary["steps"]}
    info["precision"] = cfg.precision  # what ran (auto resolved)
    return run / "checkpoint" / "model", info


def measure(clip: Clip, worlds: dict[str, Path]) -> dict[str, float]:
    scores = {}
    for label in (*LABELS, "background"):
        world, split = (worlds["main"], "test") if label == "background" else (worlds["one"], None)
        paths, labels, names = world_labels(world, label, split=split)
        metrics, _, _ = zeroshot_classify(clip, paths, labels, names, TEMPLATES[label])
        scores[f"zeroshot_{label}"] = metrics["acc1"]
    test = load_image_text(worlds["main"], clip.image_size, split="test", limit=1000)
    scores["text_to_image_r1"] = retrieval_eval(clip, test, "fine")["image_retrieval_recall@1"]
    composed = compose_eval(clip, world_pairs(worlds["main"], "test", limit=1000).pairs)
    scores |= {f"compose_{c}": v for c, v in composed["metrics"].items()}
    scores |= {f"text_only_{c}": v for c, v in composed["text_only"].items()}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", default="runs/bench", help="Where worlds and runs live.")
    parser.add_argument("--model", default="finevl-tiny-conv")
    parser.add_argument("--recipe", choices=("contrastive", "lit"), default="lit")
    parser.add_argument("--minutes", type=float, default=5.0, help="Contrastive stage's time budget.")
    parser.add_argument("--steps", type=int, default=600, help="Contrastive schedule (stops at the budget).")
    parser.add_argument("--tower-minutes", type=float, default=5.0, help="LiT: the tower's time budget.")
    parser.add_argument("--tower-steps", type=int, default=800, help="LiT: the tower's schedule.")
    parser.add_argument(
        "--tower-images", type=int, default=4000,
        help="LiT: the one-object world's size (with --scene-images its train split, 80 %%, is used).",
    )  # fmt: skip
    parser.add_argument("--tower-batch", type=int, default=128, help="LiT: the tower's batch size.")
    parser.add_argument(
        "--precision", default="fp32", help="Training precision of both stages (auto: bf16 where fast)."
    )
    parser.add_argument("--world-images", type=int, default=8000, help="Size of the main world.")
    parser.add_argument(
        "--mix-images", type=int, default=0,
        help="Mix a one-object world of N images into the contrastive stage's data (0: none).",
    )  # fmt: skip
    parser.add_argument("--scene-images", type=int, default=0, help="LiT: a many-object world for the tower.")
    parser.add_argument("--dense-weight", type=float, default=1.0, help="With --scene-images.")
    parser.add_argument("--relation-weight", type=float, default=2.0, help="With --scene-images.")
    parser.add_argument("--binding-weight", type=float, default=1.0, help="With --scene-images.")
    parser.add_argument("--unlock-image-head", action="store_true", help="LiT: the projection learns too.")
    parser.add_argument("--hard-negatives", type=int, default=0)
    parser.add_argument("--group-by", default="")
    parser.add_argument("--size", type=int, default=64, help="Image side of the worlds.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    work, size = Path(args.work), args.size
    main = work / (f"fs{size}" + (f"-{args.world_images}" if args.world_images != 8000 else ""))
    worlds = {
        "main": ensure_world(main, n=args.world_images, size=size, seed=0),
        "one": ensure_world(work / f"fs{size}-one-object", n=1000, size=size, seed=1, max_objects=1),
        "tower": ensure_world(
            work / f"fs{size}-one-object-train-{args.tower_images}",
            n=args.tower_images,
            size=size,
            seed=2,
            max_objects=1,
        ),  # fmt: skip
    }
    if args.scene_images:
        worlds["scene"] = ensure_world(
            work / f"fs{size}-scenes-{args.scene_images}", n=args.scene_images, size=size, seed=4
        )
    if args.mix_images:
        worlds["mix"] = ensure_world(
            work / f"fs{size}-one-object-train-{args.mix_images}", n=args.mix_images, size=size, seed=2,
            max_objects=1,
        )  # fmt: skip
    per_seed = []
    for seed in args.seeds:
        model, info = train(args, seed, worlds)
        per_seed.append({"seed": seed, **info, **measure(load_clip(model), worlds)})  # measured in fp32
        keys = [k for k in per_seed[0] if isinstance(per_seed[0][k], float)]
        result = {
            "benchmark": "clip_fineshapes",
            "settings": vars(args),
            "summary": {k: mean_std([r[k] for r in per_seed]) for k in keys},
            "per_seed": per_seed,
            "targets": {f"zeroshot_{a}": t for a, t in TARGETS.items()},
        }
        if args.out:  # each seed as it finishes (its runs resume from their folders)
            write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
