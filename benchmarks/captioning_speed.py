"""Captioner speed: greedy generation with and without the KV cache at caption length 30
(target: cache >= 3x faster), and SCST throughput with the reward's share of a step
(target: reward <= 20 % of step time), measured side by side in one run.

    .venv/bin/python benchmarks/captioning_speed.py --world runs/bench/fs64 \
        --clip runs/bench/clip/checkpoint/model --out benchmarks/results/captioning_speed.json

The captioner is freshly initialised at the demo's size (3 layers, 256 wide); speed does
not depend on its training. SCST steps use CLIP-S + CIDEr-D rewards on the world's train split.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from finevl.data.tokenizer import corpus_texts, train_word_tokenizer
from finevl.models.captioner import new_captioner
from finevl.models.clip import load_clip
from finevl.train.config import ScstConfig
from finevl.train.loop import batch_indices
from finevl.train.mle import captioning_data
from finevl.train.rewards import CaptionReward, RewardWeights
from finevl.train.scst import scst_step


def _best(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--images", type=int, default=64, help="Images per generation batch.")
    parser.add_argument("--scst-steps", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    clip = load_clip(args.clip)
    data, feats = captioning_data(args.world, clip, "train")
    with tempfile.TemporaryDirectory() as d:
        tok = train_word_tokenizer(corpus_texts(args.world), Path(d) / "tok")
    bundle = new_captioner(tok, feats.shape[-1], args.clip)
    model = bundle.model.eval()
    x = feats[: args.images]

    def generate(cache: bool) -> None:
        model.generate_ids(x, max_new_tokens=30, min_new_tokens=30, use_cache=cache)

    generate(True)  # warm up
    cached, uncached = _best(lambda: generate(True)), _best(lambda: generate(False))
    cfg = ScstConfig(data=args.world, out="-", model="-", cider_weight=1.0, batch_size=16)
    reward = CaptionReward(clip, clip.embed_pixels(data.images), data.refs, RewardWeights(2.0, 1.0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    steps = []
    for step in range(args.scst_steps):
        t = time.perf_counter()
        idx = batch_indices(len(data), cfg.batch_size, step, 0).tolist()
        loss, stats = scst_step(bundle, reward, feats[idx], idx, cfg)
        loss.backward()
        opt.step()
        opt.zero_grad()
        steps.append((time.perf_counter() - t, stats))
    step_s = sum(s for s, _ in steps[1:]) / (len(steps) - 1)  # the first step warms up
    reward_s = sum(st["seconds/reward"] for _, st in steps[1:]) / (len(steps) - 1)
    generate_s = sum(st["seconds/generate"] for _, st in steps[1:]) / (len(steps) - 1)
    result = {
        "benchmark": "captioning_speed",
        "images_per_batch": args.images,
        "caption_tokens": 30,
        "generate_with_cache_s": round(cached, 3),
        "generate_without_cache_s": round(uncached, 3),
        "kv_cache_speedup": round(uncached / cached, 2),
        "target_kv_cache_speedup": 3.0,
        "scst_images_per_step": cfg.batch_size,
        "scst_samples_per_image": cfg.samples,
        "scst_step_s": round(step_s, 3),
        "scst_samples_per_s": round(cfg.batch_size * cfg.samples / step_s, 1),
        "scst_generate_share": round(generate_s / step_s, 3),
        "scst_reward_share": round(reward_s / step_s, 3),
        "target_reward_share_max": 0.2,
        "threads": torch.get_num_threads(),
    }
    result["passed"] = result["kv_cache_speedup"] >= 3.0 and result["scst_reward_share"] <= 0.2
    if args.out:
        from finevl.data.jsonio import write_json_atomic

        write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
