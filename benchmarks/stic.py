"""Seed 001 (STIC) reproduced on FineShapes: the SFT base, + DPO on self-made preferences,
+ DPO + DIFT, and ablations (no corrupted-image negatives; upstream-style: corruption not
applied and the image dropped from DPO), each evaluated on held-out test images per VQA
family and on the description benchmark, over several seeds; mean +- std.

    .venv/bin/python benchmarks/stic.py --world runs/bench/fs64 --clip runs/bench/clip10 \
        --work runs/bench/stic --out benchmarks/results/stic.json

The base is shared by a seed's rows; every stage writes its summary and every row its
evaluation JSON, so an interrupted run resumes. Also reports DPO steps/s and peak memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from finevl.data.jsonio import read_json, write_json_atomic
from finevl.eval.vqa import evaluate_on_world
from finevl.metrics.seeds import mean_std
from finevl.train.config import shared_fields
from finevl.train.stic.config import PipelineConfig
from finevl.train.stic.pipeline import run_base, stic_variant

# row -> (variant folder, stage, variant settings)
ROWS: dict[str, tuple[str | None, str, dict[str, Any]]] = {
    "base (SFT)": (None, "base", {}),
    "+ DPO": ("stic", "dpo", {}),
    "+ DPO + DIFT (STIC)": ("stic", "dift", {}),
    "STIC without corrupted-image negatives": ("no_corruption", "dift", {"corruption_share": 0.0}),
    "STIC upstream-style (corruption not applied, no image in DPO)": (
        "upstream",
        "dift",
        {"apply_corruption": False, "drop_image": True},
    ),
}
COLUMNS = ["attribute", "count", "relation", "background", "text", "average"]


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, dict]:
    cfg = shared_fields(
        PipelineConfig, args, data=args.world, out=str(Path(args.work) / f"seed{seed}"), seed=seed
    )
    base, instructions = run_base(cfg)
    out: dict[str, dict] = {}
    for row, (variant, stage, settings) in ROWS.items():
        if variant is None:
            model = base
        else:
            model = stic_variant(replace(cfg), base, instructions, variant, **settings)[stage]
        path = Path(cfg.out) / "results" / f"{variant or 'base'}-{stage}.json"
        if not path.is_file():
            write_json_atomic(
                path, evaluate_on_world(model, args.world, "test", args.eval_images, label=row)[0]
            )
        out[row] = read_json(path)["metrics"]
        print(seed, row, out[row].get("accuracy/average"), flush=True)
    return out


def summarise(per_seed: dict[int, dict[str, dict]]) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = {}
    for row in ROWS:
        runs = [r[row] for r in per_seed.values() if row in r]
        cells = {c: mean_std([m[f"accuracy/{c}"] for m in runs]) for c in COLUMNS}
        for key in ("recall/all", "precision/all"):
            cells[f"description {key.split('/')[0]}"] = mean_std([m["description"][key] for m in runs])
        table[row] = cells
    return table


def dpo_speed(work: Path) -> dict[str, Any]:
    runs = [read_json(p) for p in sorted(work.glob("seed*/*/dpo/summary.json"))]
    return {
        "runs": len(runs),
        "steps_per_second": mean_std([r["steps_per_second"] for r in runs]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "filtered": [r["filtered"] for r in runs],
    }


def preference_quality(work: Path, world: str) -> dict[str, Any]:
    """The world judges the self-made preferences: exact fact F1 of the preferred and the
    dispreferred answers, per variant and kind, and how often the preferred one is better."""
    from finevl.data.formats import read_finecap
    from finevl.language.facts import scene_from_record
    from finevl.metrics.finecap import fact_scores

    scenes = {f"images/{r.file_name}": r.scene for r in read_finecap(Path(world) / "finecap.json")}
    out: dict[str, Any] = {}
    for variant in sorted({v for v, _, _ in ROWS.values() if v}):
        groups: dict[str, list[tuple[float, float]]] = {}
        for path in sorted(work.glob(f"seed*/{variant}/prefs.jsonl")):
            for line in path.read_text().splitlines():
                r = json.loads(line)
                scene = scene_from_record(scenes[r["image"]])
                f1 = [fact_scores([r[k]], [scene])["f1/all"] for k in ("chosen", "rejected")]
                groups.setdefault(r["rejected_kind"], []).append((f1[0], f1[1]))
        out[variant] = {
            kind: {
                "pairs": len(pairs),
                "chosen_f1": statistics.fmean(c for c, _ in pairs),
                "rejected_f1": statistics.fmean(r for _, r in pairs),
                "chosen_better": sum(c > r for c, r in pairs) / len(pairs),
                "rejected_better": sum(r > c for c, r in pairs) / len(pairs),
            }
            for kind, pairs in groups.items()
        }
    return out


def markdown(table: dict[str, Any]) -> str:
    cols = list(next(iter(table.values())))
    lines = ["| row | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row, cells in table.items():
        lines.append(
            f"| {row} | " + " | ".join(f"{c['mean']:.3f} ± {c['std']:.3f}" for c in cells.values()) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", required=True)
    parser.add_argument("--clip", required=True, help="CLIP (ViT) whose tower the LLaVA uses.")
    parser.add_argument("--work", default="runs/bench/stic")
    parser.add_argument("--out", default="benchmarks/results/stic.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lm-steps", type=int, default=300)
    parser.add_argument("--align-steps", type=int, default=100)
    parser.add_argument("--sft-steps", type=int, default=400)
    parser.add_argument("--sft-images", type=int, default=600)
    parser.add_argument("--pref-images", type=int, default=1000)
    parser.add_argument("--dift-steps", type=int, default=60)
    parser.add_argument("--dift-examples", type=int, default=500)
    parser.add_argument("--eval-images", type=int, default=100)
    parser.add_argument(
        "--train-vision", action="store_true", help="Base: train the tower in SFT (LLaVA-1.6)."
    )
    args = parser.parse_args()
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = run_seed(seed, args)
        table = summarise(per_seed)
        result = {
            "task": "stic_reproduction",
            "settings": vars(args),
            "seeds_done": sorted(per_seed),
            "table": table,
            "markdown": markdown(table),
            "dpo": dpo_speed(Path(args.work)),
            "preference_quality": preference_quality(Path(args.work), args.world),
        }
        write_json_atomic(args.out, result)
    print(result["markdown"])


if __name__ == "__main__":
    main()
