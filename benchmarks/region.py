"""Seed 003 (Osprey) reproduced on FineShapes: mask-level against box-level region
features, with and without the spatial token, and the contribution of each training stage,
each model evaluated on held-out test images (referring classification overall and on
overlapping objects, open-vocabulary segmentation, region captioning, detailed
description), over several seeds; mean +- std and paired differences.

    .venv/bin/python benchmarks/region.py --world runs/bench/fs128 \
        --clip runs/bench/clip-convnext/checkpoint/model --work runs/bench/region \
        --out benchmarks/results/region.json

Chains share their common stages (one `lm` and one stage 1 per seed); every stage writes
its summary and every row its evaluation JSON, so an interrupted run resumes. Seeds can run
in parallel processes (`--seeds 0 --threads 1`, ...); a last call with every seed reads the
saved rows back and writes the summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finevl.data.jsonio import read_json, write_json_atomic
from finevl.eval.region import evaluate_regions, write_region_results
from finevl.metrics.region import REGION_HEADLINE
from finevl.metrics.seeds import mean_std
from finevl.train.config import shared_fields
from finevl.train.region.config import RegionEvalConfig, RegionPipelineConfig
from finevl.train.region.pipeline import Chain, run_chain

# row -> (chain, how many of its stages run: None = all)
ROWS: dict[str, tuple[Chain, int | None]] = {
    "Osprey: mask + spatial token, stages 1-3": (Chain(), None),
    "box + spatial token of the box": (Chain(region_input="box"), None),
    "mask, no spatial token": (Chain(spatial_token=False), None),
    "box, no spatial token": (Chain(region_input="box", spatial_token=False), None),
    "mask + spatial, without stage 3": (Chain(), 2),
    "mask + spatial, without stage 2": (Chain(stages=("1", "3")), None),
    "mask + spatial, without stage 1": (Chain(stages=("2", "3")), None),
}
PAIRS = {  # paired differences, first minus second, per seed
    "mask - box (with spatial token)": (
        "Osprey: mask + spatial token, stages 1-3",
        "box + spatial token of the box",
    ),
    "mask - box (no spatial token)": ("mask, no spatial token", "box, no spatial token"),
    "spatial token (mask)": ("Osprey: mask + spatial token, stages 1-3", "mask, no spatial token"),
}
COLUMNS = REGION_HEADLINE


def _slug(row: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in row.lower()).strip("-")


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, dict]:
    cfg = shared_fields(
        RegionPipelineConfig, args, data=args.world, out=str(Path(args.work) / f"seed{seed}"), seed=seed
    )
    out: dict[str, dict] = {}
    for row, (chain, upto) in list(ROWS.items())[: args.rows]:
        path = Path(cfg.out) / "results" / f"{_slug(row)}.json"
        if not path.is_file():
            model = run_chain(cfg, chain, upto)
            eval_cfg = RegionEvalConfig(
                model=model, data=args.world, out=str(path), limit=args.eval_images, label=row
            )
            write_region_results(path, *evaluate_regions(eval_cfg))
        out[row] = read_json(path)["metrics"]
        print(seed, row, {k: round(out[row][a][b], 3) for k, (a, b) in list(COLUMNS.items())[:4]}, flush=True)
    return out


def summarise(per_seed: dict[int, dict[str, dict]]) -> dict[str, Any]:
    """Mean +- std per row over the seeds that have it, and paired differences."""
    table, paired = {}, {}
    for row in ROWS:
        runs = [r[row] for r in per_seed.values() if row in r]
        if runs:
            table[row] = {c: mean_std([m[a][b] for m in runs]) for c, (a, b) in COLUMNS.items()}
            table[row]["seeds"] = len(runs)
    for name, (x, y) in PAIRS.items():
        both = [r for r in per_seed.values() if x in r and y in r]
        if both:
            paired[name] = {
                c: mean_std([r[x][a][b] - r[y][a][b] for r in both]) for c, (a, b) in COLUMNS.items()
            }
            paired[name]["seeds"] = len(both)
    return {"table": table, "paired": paired}


def markdown(table: dict[str, Any]) -> str:
    cols = list(COLUMNS)
    lines = ["| row | seeds | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for row, cells in table.items():
        cells_text = " | ".join(f"{cells[c]['mean']:.3f} ± {cells[c]['std']:.3f}" for c in cols)
        lines.append(f"| {row} | {cells.get('seeds', '')} | {cells_text} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", required=True)
    parser.add_argument("--clip", required=True, help="ConvNeXt CLIP (open_clip) whose tower the model uses.")
    parser.add_argument("--work", default="runs/bench/region")
    parser.add_argument("--out", default="benchmarks/results/region.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lm-steps", type=int, default=400)
    parser.add_argument("--stage1-steps", type=int, default=100)
    parser.add_argument("--stage2-steps", type=int, default=120)
    parser.add_argument("--stage3-steps", type=int, default=500)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--eval-images", type=int, default=150)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    parser.add_argument("--rows", type=int, default=len(ROWS), help="Only the first N rows (a quick look).")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    per_seed = {seed: run_seed(seed, args) for seed in args.seeds}
    summary = {"settings": vars(args), **summarise(per_seed), "per_seed": per_seed}
    write_json_atomic(args.out, summary)
    print(markdown(summary["table"]))
    print(markdown(summary["paired"]))


if __name__ == "__main__":
    main()
