"""DPO speed and memory for a model (the tiny LLaVA by default): steps/s and peak resident
memory of `finevl stic dpo` (TRL DPOTrainer + LoRA, batch 8) over a preference file, plus
the first-batch loss check (TRL's loss, ours re-derived, upstream's formula).

    .venv/bin/python -W ignore::FutureWarning benchmarks/dpo_speed.py \
        --model runs/bench/stic/seed0/base/sft/checkpoint/model \
        --prefs runs/bench/stic/seed0/stic/prefs.jsonl --data runs/bench/fs64 \
        --out benchmarks/results/dpo_speed.json

Each run is a fresh process (peak memory is the process's), so runs do not share a peak.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from finevl.data.jsonio import write_json_atomic

CHILD = """
import json, sys
from finevl.train.stic.config import DpoConfig
from finevl.train.stic.dpo import train_dpo
cfg = DpoConfig(**json.loads(sys.argv[1]))
s = train_dpo(cfg)
print(json.dumps({k: s[k] for k in ("steps", "steps_per_second", "peak_rss_mb", "loss_check", "records")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prefs", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="benchmarks/results/dpo_speed.json")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    runs = []
    for k in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {"model": args.model, "prefs": args.prefs, "data": args.data, "out": str(Path(tmp) / "dpo"),
                   "batch_size": args.batch_size, "seed": k, "merge": False}  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-W", "ignore", "-c", CHILD, json.dumps(cfg)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    result = {
        "task": "dpo_speed",
        "model": args.model,
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)",
        "machine": platform.processor() or platform.machine(),
        "batch_size": args.batch_size,
        "steps_per_second": [r["steps_per_second"] for r in runs],
        "peak_rss_mb": [r["peak_rss_mb"] for r in runs],
        "loss_check": runs[0]["loss_check"],
        "runs": runs,
    }
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
