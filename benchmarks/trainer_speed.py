"""Each trainer's steps/s and peak RSS, for two source trees side by side in one run (the
loop refactor's check: the one `Trainer` against the loops it replaced).

Every (trainer, tree) run is a fresh child process (`PYTHONPATH=TREE/src`) on the same tiny
world and models, alternated and repeated; steps/s is taken from the run's own `log.jsonl`
clock between its first and last step (model loading excluded), peak RSS from the child.

    git worktree add /tmp/before 65bfabe
    python benchmarks/trainer_speed.py --before /tmp/before --after . \
        --out benchmarks/results/trainer_speed.json

One tree against itself with a setting changed on one side, e.g. the Trainer's heap policy:

    python benchmarks/trainer_speed.py --before . --before-env FINEVL_KEEP_FREED_MEMORY=0 --after .
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TRAINERS = ("clip", "tower", "mle", "scst", "grammar", "region-lm", "stic-lm")
# the precision benchmark's rows also train these (benchmarks/precision.py)
MORE_TRAINERS = ("lit", "region-3", "judge", "dpo")


def prepare(root: Path) -> None:
    """The tiny world, CLIP towers, captioner and LLaVA every child trains from."""
    import torch

    from finevl.data.tokenizer import train_word_tokenizer
    from finevl.models.clip import load_clip
    from finevl.models.lvlm import CHAT_WORDS, build_lvlm
    from finevl.train.config import CaptionTrainConfig
    from finevl.train.mle import train_captioner
    from finevl.train.stic.data import split_texts
    from finevl.train.stic.prompts import all_prompts
    from finevl.world.generate import WorldConfig, generate_world

    generate_world(WorldConfig(n=200, size=64, seed=3), root / "world", workers=1)
    for name in ("finevl-tiny-vit", "finevl-tiny-conv"):
        torch.manual_seed(0)
        load_clip(name).save(root / name)
    clip, out = str(root / "finevl-tiny-vit"), str(root / "mle")
    train_captioner(CaptionTrainConfig(data=str(root / "world"), clip=clip, out=out, steps=1, batch_size=4))
    texts = split_texts(root / "world", "train") + all_prompts() + [CHAT_WORDS]
    tok = train_word_tokenizer(texts, root / "tok", 256)
    build_lvlm(load_clip(root / "finevl-tiny-vit"), tok, "tiny", seed=0).save(root / "lvlm")
    _prepare_more(root)


def _prepare_more(root: Path) -> None:
    """A region model after its lm stage (stage 3 starts there) and preference records (DPO)."""
    from finevl.data.formats import read_finecap
    from finevl.train.region.config import RegionTrainConfig
    from finevl.train.region.stages import train_region_stage

    world, conv = str(root / "world"), str(root / "finevl-tiny-conv")
    cfg = RegionTrainConfig(
        data=world, out=str(root / "region-lm"), stage="lm", clip=conv, images=50, steps=1, precision="fp32"
    )
    train_region_stage(cfg)
    fine = {f"images/{r.file_name}": r.caption for r in read_finecap(root / "world" / "finecap.json")}
    images = sorted(fine)
    with (root / "prefs.jsonl").open("w") as f:  # preferred: the image's fine caption; not: another's
        for i, image in enumerate(images):
            other = fine[images[(i + 1) % len(images)]]
            row = {"id": i, "image": image, "prompt": "<image>\nDescribe the image.", "chosen": fine[image],
                   "rejected": other, "rejected_kind": "hallucination", "rejected_prompt": ""}  # fmt: skip
            f.write(json.dumps(row) + "\n")


def child(
    name: str, root: Path, out: Path, steps: int, precision: str = "fp32", batch_size: int = 32
) -> dict:
    """Train one trainer for `steps` steps of `batch_size` (0: the command's default; SCST's
    as `make demo` runs it) at `precision`; its steps/s, the precision that ran, the mean loss
    of its last 10 steps and this process's peak RSS."""
    from finevl.train import config as C

    world, vit, conv = str(root / "world"), str(root / "finevl-tiny-vit"), str(root / "finevl-tiny-conv")
    common = dict(data=world, out=str(out), steps=steps, warmup_steps=2, log_every=1, save_every=10_000,
                  precision=precision, **({"batch_size": batch_size} if batch_size else {}))  # fmt: skip
    if name == "dpo":
        return _dpo_child(root, out, steps, precision)
    if name in ("clip", "lit"):
        from finevl.train.contrastive import train_clip

        lit = name == "lit"
        train_clip(C.ClipTrainConfig(**common, model=conv if lit else vit, lock_image=lit))
    elif name == "tower":
        from finevl.train.tower import train_tower

        train_tower(C.TowerTrainConfig(**common, model=conv))
    elif name == "mle":
        from finevl.train.mle import train_captioner

        train_captioner(C.CaptionTrainConfig(**common, clip=vit))
    elif name == "scst":
        from finevl.train.scst import train_scst

        model = str(root / "mle" / "checkpoint" / "model")
        sampling = dict(batch_size=8, samples=3, max_new_tokens=8) if batch_size else dict(batch_size=16)
        train_scst(C.ScstConfig(**{**common, **sampling}, model=model))
    elif name == "grammar":
        from finevl.train.grammar import train_grammar

        train_grammar(C.GrammarTrainConfig(**common, clip=vit))
    elif name == "region-lm":
        from finevl.train.region.config import RegionTrainConfig
        from finevl.train.region.stages import train_region_stage

        train_region_stage(RegionTrainConfig(**common, stage="lm", clip=conv, images=50))
    elif name == "region-3":
        from finevl.train.region.config import RegionTrainConfig
        from finevl.train.region.stages import train_region_stage

        start = str(root / "region-lm" / "checkpoint" / "model")
        train_region_stage(RegionTrainConfig(**common, stage="3", model=start, images=50))
    elif name == "judge":
        from finevl.eval.judge import JudgeTrainConfig, train_attribute_judge

        train_attribute_judge(JudgeTrainConfig(**{**common, "batch_size": 128}))
    else:
        from finevl.models.lvlm import load_lvlm
        from finevl.train.stic.config import SupervisedConfig
        from finevl.train.stic.data import lm_texts
        from finevl.train.stic.sft import train_supervised

        start = load_lvlm(root / "lvlm")
        train_supervised(
            SupervisedConfig(**common, model="", train="lm"), lm_texts(world, "train"), start=start
        )
    log = _log_rows(out)
    seconds = [row["seconds"] for row in log]
    return {
        "steps_per_s": (len(seconds) - 1) / (seconds[-1] - seconds[0]),
        "precision": json.loads((out / "config.json").read_text())["precision"],
        "final_loss": statistics.fmean(row["loss"] for row in log[-10:]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _dpo_child(root: Path, out: Path, steps: int, precision: str) -> dict:
    """TRL's DPO (LoRA, batch 8) on the tiny LLaVA for `steps` steps (epochs over 200 records)."""
    from finevl.train.stic.config import DpoConfig
    from finevl.train.stic.dpo import train_dpo

    records = sum(1 for _ in (root / "prefs.jsonl").open())
    cfg = DpoConfig(
        model=str(root / "lvlm"), prefs=str(root / "prefs.jsonl"), data=str(root / "world"), out=str(out),
        batch_size=8, epochs=steps * 8 / records, merge=False, precision=precision,
    )  # fmt: skip
    summary = train_dpo(cfg)
    losses = [row["loss"] for row in _log_rows(out) if "loss" in row]
    return {
        "steps_per_s": summary["steps_per_second"],
        "precision": cfg.precision,
        "final_loss": statistics.fmean(losses[-10:]),
        "peak_rss_mb": summary["peak_rss_mb"],
    }


def _log_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def run_child(
    tree: Path, name: str, root: Path, out: Path, steps: int, extra_env: dict, precision: str = "fp32",
    batch_size: int = 32,
) -> dict:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree.resolve() / "src"), "OMP_NUM_THREADS": "2", **extra_env}
    cmd = [sys.executable, "-W", "ignore", __file__, "--child", name, "--root", str(root), "--run", str(out)]
    cmd += ["--steps", str(steps), "--precision", precision, "--batch-size", str(batch_size)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} on {tree}: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the source tree measured first (a git worktree)")
    parser.add_argument("--after", type=Path, default=Path("."))
    parser.add_argument("--before-env", nargs="*", default=[], help="KEY=VALUE set for the before side")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trainers", nargs="*", default=list(TRAINERS))
    parser.add_argument("--out")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.root, args.run, args.steps, args.precision, args.batch_size)))
        return
    before_env = dict(pair.split("=", 1) for pair in args.before_env)
    result: dict = {
        "benchmark": "trainer_speed",
        "before_env": before_env,
        "steps": args.steps,
        "repeats": args.repeats,
        "trainers": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare(root)
        for name in args.trainers:
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for k in range(args.repeats):  # alternated, so drift in the machine hits both
                for side, tree in (("before", args.before), ("after", args.after)):
                    env = before_env if side == "before" else {}
                    out = root / f"{name}-{side}-{k}"
                    runs[side].append(run_child(tree, name, root, out, args.steps, env))
            row = {
                side: {
                    "steps_per_s": round(statistics.median(r["steps_per_s"] for r in rs), 2),
                    "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rs)),
                }
                for side, rs in runs.items()
            }
            row["speed_ratio"] = round(row["after"]["steps_per_s"] / row["before"]["steps_per_s"], 3)
            result["trainers"][name] = row
            print(name, json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
