"""CLIP training speed: model FLOP/s of a contrastive step at batch >= 128 against the
machine's fp32 matmul peak (measured in the same run), and samples/s with 1 vs 2 processes.

    .venv/bin/python benchmarks/clip_train.py --world runs/bench/fs64 \
        --out benchmarks/results/clip_train.json

FLOPs are counted by torch's FlopCounterMode over one forward + backward (matmuls and
convolutions, the model FLOPs); time is the mean of the measured steps after warm-up.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from open_clip import ClipLoss
from peak import matmul_peak

from finevl.data.imagetext import CaptionSampler, load_image_text
from finevl.models.clip import load_clip
from finevl.train.contrastive import make_batch
from finevl.train.launch import finevl_command
from finevl.train.loop import batch_indices


def step_flops_and_time(model: str, world: str, batch: int, steps: int) -> dict[str, float]:
    """FLOPs of one training step and seconds per step (forward, backward, AdamW)."""
    from torch.utils.flop_counter import FlopCounterMode

    clip = load_clip(model).train()
    data = load_image_text(world, clip.image_size, split="train", limit=batch * (steps + 2))
    opt = torch.optim.AdamW(clip.parameters(), lr=1e-4)
    loss_fn, sampler = ClipLoss(), CaptionSampler()

    def step(k: int) -> None:
        pixels, texts, _ = make_batch(
            clip, data, batch_indices(len(data), batch, k, 0), random.Random(k), sampler
        )
        loss_fn(*clip(pixels, texts)).backward()
        opt.step()
        opt.zero_grad()

    with FlopCounterMode(display=False) as counter:
        step(0)
    step(1)  # warm-up
    t = time.perf_counter()
    for k in range(2, steps + 2):
        step(k)
    seconds = (time.perf_counter() - t) / steps
    return {"flops_per_step": counter.get_total_flops(), "seconds_per_step": seconds}


def processes_throughput(model: str, world: str, batch: int, steps: int, processes: int) -> float:
    """Samples/s of `finevl clip train` with 1 or 2 CPU processes (start-up excluded: the
    run's own `seconds` covers the steps)."""
    with tempfile.TemporaryDirectory() as d:
        args = [
            "clip",
            "train",
            "--model",
            model,
            "--data",
            world,
            "--out",
            f"{d}/run",
            "--steps",
            str(steps),
            "--batch-size",
            str(batch),
            "--save-every",
            str(10 * steps),
            "--warmup-steps",
            "1",
        ]
        cmd, env = finevl_command(args, processes)
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        summary = json.loads(Path(f"{d}/run/summary.json").read_text())
    return batch * steps / summary["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", required=True, help="A FineShapes world (64 px) to train on.")
    parser.add_argument("--model", default="finevl-tiny-vit")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    peak = matmul_peak()
    speed = step_flops_and_time(args.model, args.world, args.batch, args.steps)
    flops_per_s = speed["flops_per_step"] / speed["seconds_per_step"]
    one = processes_throughput(args.model, args.world, args.batch, args.steps, 1)
    two = processes_throughput(args.model, args.world, args.batch, args.steps, 2)
    result = {
        "benchmark": "clip_train",
        "model": args.model,
        "batch": args.batch,
        **peak,
        "model_gflop_per_step": round(speed["flops_per_step"] / 1e9, 2),
        "seconds_per_step": round(speed["seconds_per_step"], 3),
        "model_gflops": round(flops_per_s / 1e9, 1),
        "utilisation_of_peak": round(flops_per_s / 1e9 / peak["gemm_gflops"], 3),
        "target_utilisation": 0.4,
        "samples_per_s_1_process": round(one, 1),
        "samples_per_s_2_processes": round(two, 1),
    }
    result["passed"] = result["utilisation_of_peak"] >= 0.4
    if args.out:
        from finevl.data.jsonio import write_json_atomic

        write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
