"""The first losses of every finevl trainer on a tiny world, fixed seeds, one CPU process.

A refactor of the training loop must not change them: run this before and after, compare.

    python benchmarks/first_losses.py --out runs/losses-before.json
    python benchmarks/first_losses.py --out runs/losses-after.json --compare runs/losses-before.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

STEPS = 20


def _losses(run: Path) -> list[float]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def record(root: Path) -> dict[str, list[float]]:
    from finevl.data.hard_negatives import negative_vocab
    from finevl.data.tokenizer import train_word_tokenizer
    from finevl.language.grammar import caption_is_false
    from finevl.models.clip import load_clip
    from finevl.models.lvlm import CHAT_WORDS, build_lvlm
    from finevl.train import config as C
    from finevl.train.contrastive import train_clip
    from finevl.train.grammar import train_grammar
    from finevl.train.mle import train_captioner
    from finevl.train.region.config import RegionTrainConfig
    from finevl.train.region.stages import train_region_stage
    from finevl.train.scst import train_scst
    from finevl.train.stic.config import SupervisedConfig
    from finevl.train.stic.data import lm_texts, split_texts
    from finevl.train.stic.prompts import all_prompts
    from finevl.train.stic.sft import train_supervised
    from finevl.train.tower import train_tower
    from finevl.world.generate import WorldConfig, generate_world

    world = root / "world"
    generate_world(WorldConfig(n=60, size=64, seed=3), world, workers=1)
    torch.manual_seed(0)
    clip = str(load_clip("finevl-tiny-vit").save(root / "clip"))
    torch.manual_seed(0)
    conv = str(load_clip("finevl-tiny-conv").save(root / "conv"))
    # fp32 pinned: the losses are compared bit for bit with a recorded run
    common = dict(
        data=str(world),
        steps=STEPS,
        batch_size=8,
        warmup_steps=2,
        log_every=1,
        save_every=100,
        precision="fp32",
    )
    runs: dict[str, Path] = {}

    def run(name: str, train, cfg, **kw) -> None:
        train(cfg, **kw)
        runs[name] = Path(cfg.out)

    run("clip", train_clip, C.ClipTrainConfig(**common, out=str(root / "clip-run"), model=clip))
    run(
        "clip-negatives",
        train_clip,
        C.ClipTrainConfig(**common, out=str(root / "clip-neg"), model=clip, hard_negatives=2, grad_accum=2),
        check=caption_is_false,
        default_vocab=negative_vocab(),
    )
    run("tower", train_tower, C.TowerTrainConfig(**common, out=str(root / "tower"), model=conv))
    run("mle", train_captioner, C.CaptionTrainConfig(**common, out=str(root / "mle"), clip=clip))
    captioner = str(root / "mle" / "checkpoint" / "model")
    scst = C.ScstConfig(**common, out=str(root / "scst"), model=captioner, samples=2, max_new_tokens=6)
    run("scst", train_scst, scst)
    run("grammar", train_grammar, C.GrammarTrainConfig(**common, out=str(root / "grammar"), clip=clip))
    region = RegionTrainConfig(**common, out=str(root / "region"), stage="lm", clip=conv, images=20)
    run("region-lm", train_region_stage, region)
    tok = train_word_tokenizer(split_texts(world, "train") + all_prompts() + [CHAT_WORDS], root / "tok", 256)
    lvlm = build_lvlm(load_clip(clip), tok, "tiny", seed=0)
    sft = SupervisedConfig(**common, out=str(root / "sft"), model="", train="lm")
    run("stic-lm", train_supervised, sft, turns=lm_texts(world, "train"), start=lvlm)
    return {name: _losses(folder) for name, folder in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare", help="an earlier run's JSON: report the largest difference")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        losses = record(Path(tmp))
    Path(args.out).write_text(json.dumps(losses, indent=1))
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        worst = 0.0
        for name, values in losses.items():
            diff = max(abs(a - b) for a, b in zip(values, before[name], strict=True))
            print(f"{name:16s} {len(values)} losses, largest difference {diff:.3g}")
            worst = max(worst, diff)
        sys.exit(0 if worst == 0 else 1)


if __name__ == "__main__":
    main()
