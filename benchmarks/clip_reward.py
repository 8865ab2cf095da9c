"""Seed 000 reproduced on FineShapes: MLE on coarse references, then SCST with CIDEr-D,
CLIP-S, CLIP-S + CIDEr-D and CLIP-S + grammar rewards, and retrieval-based captioning; each
row evaluated on held-out test images (`finevl finecap eval`), over several seeds.

    .venv/bin/python benchmarks/clip_reward.py --clip runs/bench/clip/checkpoint/model \
        --work runs/bench/clip_reward --out benchmarks/results/clip_reward.json

Every stage saves its run folder and every row its evaluation JSON, so an interrupted run
resumes where it stopped. The world is generated under --work if missing. The reward CLIP
is --clip; evaluation uses --eval-clip (default: the same frozen CLIP, as upstream).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from finevl.apps.captioning import generate_captions
from finevl.apps.retrieval import caption_by_retrieval, caption_pool
from finevl.data.imagetext import load_image_text
from finevl.data.jsonio import read_json, write_json_atomic
from finevl.eval.caption import HEADLINE, evaluate_captions, headline
from finevl.models.captioner import load_captioner
from finevl.models.clip import load_clip
from finevl.train.config import CaptionTrainConfig, GrammarTrainConfig, ScstConfig
from finevl.train.grammar import train_grammar
from finevl.train.mle import train_captioner
from finevl.train.scst import train_scst
from finevl.world.config import WorldConfig
from finevl.world.generate import generate_world

# row -> SCST reward weights (upstream's: 2.0 x CLIP-S, + 1.0 x CIDEr-D or + 1.0 x grammar)
SCST_ROWS = {
    "SCST CIDEr": {"clip_s_weight": 0.0, "cider_weight": 1.0},
    "SCST CLIP-S": {"clip_s_weight": 2.0},
    "SCST CLIP-S + CIDEr": {"clip_s_weight": 2.0, "cider_weight": 1.0},
    "SCST CLIP-S + grammar": {"clip_s_weight": 2.0, "grammar_weight": 1.0},
}


def _train(trainer: Any, cfg: Any) -> Path:
    out = Path(cfg.out)
    if not (out / "summary.json").is_file():
        trainer(cfg, resume=out.exists() and any(out.iterdir()))
    return out / "checkpoint" / "model"


def _evaluate(row_dir: Path, captions: list[str], ids: list[int], args: argparse.Namespace) -> dict:
    result_path = row_dir / "eval.json"
    if result_path.is_file():
        return read_json(result_path)
    preds = row_dir / "preds.json"
    write_json_atomic(preds, [{"image_id": i, "caption": c} for i, c in zip(ids, captions, strict=True)])
    result = evaluate_captions(preds, args.world, load_clip(args.eval_clip or args.clip), meteor=args.meteor)
    write_json_atomic(result_path, result)
    return result


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, dict]:
    work, w = Path(args.work) / f"seed{seed}", str(args.world)
    common = {"data": w, "seed": seed, "save_every": 10_000}
    mle = _train(
        train_captioner,
        CaptionTrainConfig(
            **common, out=str(work / "mle"), clip=args.clip, steps=args.mle_steps, batch_size=32
        ),
    )
    grammar = _train(
        train_grammar,
        GrammarTrainConfig(**common, out=str(work / "grammar"), clip=args.clip, steps=args.grammar_steps),
    )
    models = {"MLE": mle}
    for row, weights in SCST_ROWS.items():
        extra = {"grammar": str(grammar)} if "grammar_weight" in weights else {}
        cfg = ScstConfig(
            **common,
            out=str(work / row.replace(" ", "_").replace("+", "plus")),
            model=str(mle),
            steps=args.scst_steps,
            batch_size=16,
            lr=args.scst_lr,
            warmup_steps=0,
            max_grad_norm=1.0,
            **weights,
            **extra,
        )
        models[row] = _train(train_scst, cfg)
    clip = load_clip(args.clip)
    test = load_image_text(w, clip.image_size, split="test", limit=args.test_images)
    results = {}
    for row, path in models.items():
        bundle = load_captioner(path)
        captions = generate_captions(bundle, clip, test.images)
        results[row] = _evaluate(work / f"eval_{row.replace(' ', '_')}", captions, test.image_ids, args)
    pool = caption_pool(load_image_text(w, clip.image_size, split="train"), "all")
    retrieved = caption_by_retrieval(clip.embed_pixels(test.images), clip.embed_texts(pool), pool)
    results["retrieval captioning"] = _evaluate(work / "eval_retrieval", retrieved, test.image_ids, args)
    return results


def summarise(per_seed: dict[int, dict[str, dict]]) -> dict[str, dict[str, str]]:
    """row -> column -> "mean ± std" over seeds."""
    rows = next(iter(per_seed.values())).keys()
    table = {}
    for row in rows:
        columns = [headline(per_seed[s][row]) for s in per_seed]
        table[row] = {}
        for col in HEADLINE:
            values = [c[col] for c in columns if c[col] is not None]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            table[row][col] = f"{statistics.mean(values):.3f} ± {std:.3f}" if values else "–"
    return table


def markdown(table: dict[str, dict[str, str]]) -> str:
    """The table as Markdown, rows x HEADLINE columns, for docs/clip_reward.md."""
    cols = list(HEADLINE)
    lines = ["| row | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {row} | " + " | ".join(values[c] for c in cols) + " |" for row, values in table.items()]
    return "\n".join(lines)


def run_summaries(args: argparse.Namespace) -> dict[str, Any]:
    """Grammar-head held-out accuracy and SCST speed, mean ± std over seeds, from the runs."""

    def stat(values: list[float]) -> str:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {std:.3f}"

    work = Path(args.work)
    grammar = [
        read_json(work / f"seed{s}" / "grammar" / "summary.json")["held_out_accuracy"] for s in args.seeds
    ]
    scst = [read_json(p) for s in args.seeds for p in (work / f"seed{s}").glob("SCST_*/summary.json")]
    return {
        "grammar_held_out_accuracy": {k: stat([g[k] for g in grammar]) for k in grammar[0]},
        "scst_samples_per_s": stat([r["samples_per_s"] for r in scst]),
        "scst_reward_share": stat([r["reward_share"] for r in scst]),
    }


def examples(args: argparse.Namespace, seed: int, n: int = 6) -> list[dict[str, str]]:
    work = Path(args.work) / f"seed{seed}"
    out = []
    by_row = {
        p.name.removeprefix("eval_"): json.loads((p / "preds.json").read_text()) for p in work.glob("eval_*")
    }
    for k in range(n):
        first = next(iter(by_row.values()))[k]
        out.append(
            {"image_id": first["image_id"], **{row: preds[k]["caption"] for row, preds in by_row.items()}}
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clip", required=True, help="Reward (and default evaluation) CLIP.")
    parser.add_argument("--eval-clip", default=None)
    parser.add_argument("--work", default="runs/bench/clip_reward")
    parser.add_argument("--world", default=None, help="Default: WORK/world, generated if missing.")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mle-steps", type=int, default=300)
    parser.add_argument("--grammar-steps", type=int, default=500)
    parser.add_argument("--scst-steps", type=int, default=250)
    parser.add_argument("--scst-lr", type=float, default=1e-5)
    parser.add_argument("--test-images", type=int, default=400)
    parser.add_argument("--meteor", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.world = Path(args.world or Path(args.work) / "world")
    if not (args.world / "world.json").is_file():
        generate_world(WorldConfig(n=args.images, size=64, seed=7), args.world, overwrite=True)
    per_seed = {seed: run_seed(seed, args) for seed in args.seeds}
    result = {
        "benchmark": "clip_reward",
        "settings": {k: str(v) for k, v in vars(args).items()},
        "table": summarise(per_seed),
        "seeds": list(per_seed),
        "runs": run_summaries(args),
        "examples": examples(args, args.seeds[0]),
    }
    result["markdown"] = markdown(result["table"])
    if args.out:
        write_json_atomic(args.out, result)
    print(json.dumps(result["table"], indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
