"""Seed 002's text-guided editing measured on FineShapes: edits of colour, pattern, size and
background on held-out scenes, optimised with one CLIP and judged by models it never saw
(a second CLIP trained with another seed, and the attribute judge trained on the world's
masks and labels), with and without augmentations and with and without the region mask;
mean +- std over seeds (each seed draws other scenes, target values and views).

    .venv/bin/python benchmarks/editing.py --world runs/bench/fs64 \
        --clip runs/bench/clip-finevl-tiny-vit-seed0/checkpoint/model \
        --judge-clip runs/bench/clip-finevl-tiny-vit-seed1/checkpoint/model \
        --work runs/bench/editing --out benchmarks/results/editing.json

Each (seed, condition) writes its records to the work folder, under a key of the world,
the models, the output and the settings, so an interrupted run resumes and a changed one
starts afresh; the examples' before/after figures go beside the output JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from finevl.apps.editing import EditSettings, before_after, edit_image, image_tensor
from finevl.data.images import load_image
from finevl.data.jsonio import read_json, write_json_atomic
from finevl.eval.edit import (
    CHANGES,
    KINDS,
    RATES,
    SCORE_LABELS,
    EditCase,
    edit_cases,
    judge_edit,
    summarise,
)
from finevl.eval.judge import JudgeTrainConfig, train_attribute_judge
from finevl.metrics.seeds import mean_std
from finevl.models.attribute_judge import load_attribute_judge
from finevl.models.clip import load_clip
from finevl.world.counterfactual import counterfactual_image

ORACLE = "oracle: the world re-rendered with the new value"
CONDITIONS = {  # name -> (random views per step, edit confined to the region)
    ORACLE: (0, True),
    "augmented, masked": (8, True),
    "no augmentation, masked": (0, True),
    "augmented, no mask": (8, False),
}


def ensure_judge(world: str, folder: Path) -> dict[str, Any]:
    """The attribute judge of the world, trained once into `folder`."""
    if not (folder / "summary.json").is_file():
        judge, summary = train_attribute_judge(JudgeTrainConfig(data=world, out=str(folder / "run")))
        judge.save(folder / "model")
        write_json_atomic(folder / "summary.json", summary)
    return read_json(folder / "summary.json")


def run_condition(
    world: str,
    cases: list[EditCase],
    condition: str,
    settings: EditSettings,
    models: tuple,
    figures: Path | None,
) -> list[dict[str, Any]]:
    """Every case edited under one condition and judged; the first edit of each kind drawn
    before/after into `figures`."""
    clip, judge_clip, judge = models
    views, masked = CONDITIONS[condition]
    records = []
    for k, case in enumerate(cases):
        image = load_image(case.path)
        if condition == ORACLE:
            pixels = counterfactual_image(world, case.image_id, case.obj, case.kind, case.after)
            edited = Image.fromarray(pixels)
        else:
            region = case.region if masked else None
            edited, _ = edit_image(
                clip, image, case.target, case.source, region, replace(settings, views=views)
            )
        records.append(judge_edit(case, image_tensor(edited), clip, judge_clip, judge))
        if figures and (k == 0 or case.kind != cases[k - 1].kind):
            figures.mkdir(parents=True, exist_ok=True)
            before_after(image, edited).save(figures / f"{case.kind}.png")
            records[-1]["figure"] = str(figures / f"{case.kind}.png")
    return records


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.split(":")[0]).strip("-")


def _key(*parts: str) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]


def markdown(table: dict[str, dict]) -> str:
    """The table as Markdown: a row per condition and kind, mean +- std over seeds."""
    header = "| condition | edit | " + " | ".join(SCORE_LABELS) + " |"
    lines = [header, "|---|---|" + "---|" * len(SCORE_LABELS)]
    for name, kinds in table.items():
        for kind, cells in kinds.items():
            values = " | ".join(
                f"{cells[m]['mean']:.2f} ± {cells[m]['std']:.2f}" for m in SCORE_LABELS.values()
            )
            lines.append(f"| {name} | {kind} | {values} |")
    return "\n".join(lines)


def over_seeds(values: list[float]) -> dict[str, Any]:
    """Mean, sample std and the values of one score over seeds."""
    return {**mean_std(values), "per_seed": values}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", required=True)
    parser.add_argument("--clip", required=True, help="The CLIP the edits are optimised with.")
    parser.add_argument("--judge-clip", required=True, help="An independent CLIP (another seed).")
    parser.add_argument("--work", default="runs/bench/editing")
    parser.add_argument("--out", default="benchmarks/results/editing.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-kind", type=int, default=8, help="Edits of each kind per seed.")
    parser.add_argument("--split", default="test", help="Scenes edited (val to choose settings).")
    parser.add_argument(
        "--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS), metavar="NAME"
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--param", default=EditSettings.param, help="residual or color")
    parser.add_argument("--lr", type=float, default=EditSettings.lr)
    parser.add_argument("--scale", type=int, default=EditSettings.scale)
    parser.add_argument("--keep-inside", type=float, default=EditSettings.keep_inside)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    work, out = Path(args.work), Path(args.out)
    started = time.time()
    judge_dir = work / f"judge-{_key(str(Path(args.world).resolve()))}"
    judge_summary = ensure_judge(args.world, judge_dir)
    models = (load_clip(args.clip), load_clip(args.judge_clip), load_attribute_judge(judge_dir / "model"))
    settings = EditSettings(
        steps=args.steps, param=args.param, lr=args.lr, scale=args.scale, keep_inside=args.keep_inside
    )
    # finished conditions are read back only for the same world, models, output and settings
    run = work / _key(*(str(Path(p).resolve()) for p in (args.world, args.clip, args.judge_clip, args.out)))
    cases_tag = f"{args.split}-n{args.per_kind}"
    tag = f"{cases_tag}-{args.param}-steps{args.steps}-lr{args.lr}-scale{args.scale}-keep{args.keep_inside}"
    per_seed: dict[str, list[dict]] = {name: [] for name in args.conditions}
    examples = []
    for seed in args.seeds:
        cases = edit_cases(args.world, args.split, args.per_kind, seed)
        for name in args.conditions:
            path = (
                run
                / (f"{cases_tag}-oracle" if name == ORACLE else tag)
                / f"seed{seed}"
                / f"{_slug(name)}.json"
            )
            if not path.is_file():
                figures = out.with_suffix("") / _slug(name) if seed == args.seeds[0] else None
                records = run_condition(
                    args.world, cases, name, replace(settings, seed=seed), models, figures
                )
                write_json_atomic(path, records)
            records = read_json(path)
            per_seed[name].append(summarise(records))
            examples += [
                {**r, "condition": name, "figure": str(Path(r["figure"]).relative_to(out.parent))}
                for r in records
                if "figure" in r
            ]
            print(name, seed, per_seed[name][-1]["all"], flush=True)
    table = {
        name: {
            kind: {m: over_seeds([s[kind][m] for s in seeds]) for m in (*RATES, *CHANGES)}
            for kind in (*KINDS, "all")
        }
        for name, seeds in per_seed.items()
    }
    result = {
        "task": "editing",
        "benchmark": "editing",
        "world": args.world,
        "clip": args.clip,
        "judge_clip": args.judge_clip,
        "attribute_judge": judge_summary,
        "split": args.split,
        "seeds": args.seeds,
        "edits_per_kind_per_seed": args.per_kind,
        "settings": {**vars(settings), "views": {n: v for n, (v, _) in CONDITIONS.items()}},
        "conditions": table,
        "markdown": markdown(table),
        "examples": examples,
        # only what this call computed: finished conditions are read back
        "seconds_this_call": round(time.time() - started, 1),
    }
    write_json_atomic(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
