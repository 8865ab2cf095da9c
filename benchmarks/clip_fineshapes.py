"""A tiny CLIP trained from scratch on FineShapes within a time budget, then measured:
zero-shot top-1 on shape and colour (one-object images of a world it never saw), and
text-to-image R@1 on 1,000 held-out test images with their fine captions (chance 0.1 %).

    .venv/bin/python benchmarks/clip_fineshapes.py --out benchmarks/results/clip_fineshapes.json

Worlds are generated under --work if missing; the run resumes if its folder exists.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from finevl.apps.retrieval import retrieval_eval
from finevl.apps.zeroshot import TEMPLATES, world_labels, zeroshot_classify
from finevl.data.imagetext import load_image_text
from finevl.models.clip import load_clip
from finevl.train.config import ClipTrainConfig
from finevl.train.contrastive import train_clip
from finevl.world.config import WorldConfig
from finevl.world.generate import generate_world


def ensure_world(path: Path, **config: int) -> Path:
    if not (path / "world.json").is_file():
        generate_world(WorldConfig(**config), path, overwrite=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="runs/bench", help="Where worlds and the run live.")
    parser.add_argument("--model", default="finevl-tiny-vit")
    parser.add_argument("--minutes", type=float, default=10.0, help="Training time budget.")
    parser.add_argument(
        "--steps", type=int, default=800, help="Schedule length (stops earlier at the budget)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    world = ensure_world(work / "fs64", n=20000, size=64, seed=0)
    one = ensure_world(work / "fs64-one-object", n=3000, size=64, seed=1, max_objects=1)
    run = work / f"clip-{args.model}-seed{args.seed}"
    cfg = ClipTrainConfig(
        data=str(world),
        out=str(run),
        model=args.model,
        steps=args.steps,
        batch_size=128,
        lr=1e-3,
        warmup_steps=50,
        max_minutes=args.minutes,
        save_every=200,
        seed=args.seed,
    )
    t = time.perf_counter()
    summary = train_clip(cfg, resume=run.exists())
    train_s = time.perf_counter() - t
    clip = load_clip(run / "checkpoint" / "model")
    results = {}
    for label in ("shape", "color", "background"):
        paths, labels, names = world_labels(one, label, split=None)
        metrics, _, _ = zeroshot_classify(clip, paths, labels, names, TEMPLATES[label])
        results[f"zeroshot_{label}"] = {**metrics, "images": len(paths)}
    test = load_image_text(world, clip.image_size, split="test", limit=1000)
    results["retrieval_fine_1000"] = retrieval_eval(clip, test, "fine")
    result = {
        "benchmark": "clip_fineshapes",
        "model": args.model,
        "seed": args.seed,
        "train_seconds": round(train_s, 1),
        "steps": summary["steps"],
        "batch": 128,
        "final_loss": summary.get("loss"),
        **results,
        "targets": {"zeroshot_acc1_shape": 0.9, "zeroshot_acc1_color": 0.9, "text_to_image_r1": 0.5},
    }
    result["passed"] = {
        "shape": results["zeroshot_shape"]["acc1"] >= 0.9,
        "color": results["zeroshot_color"]["acc1"] >= 0.9,
        "retrieval": results["retrieval_fine_1000"]["image_retrieval_recall@1"] >= 0.5,
    }
    if args.out:
        from finevl.data.jsonio import write_json_atomic

        write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
