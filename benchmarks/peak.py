"""The machine's fp32 and bf16 matmul peaks (GFLOP/s), the yardsticks for FLOP utilisation.

.venv/bin/python benchmarks/peak.py --out benchmarks/results/peak.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def matmul_peak(n: int = 2048, repeats: int = 20, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Best-of-3 GFLOP/s of an (n x n) @ (n x n) matmul in `dtype` on this process's threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9)
    return {"gemm_gflops": round(best, 1), "n": n, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = {"benchmark": "peak", **matmul_peak()}
    result["bf16_gemm_gflops"] = matmul_peak(dtype=torch.bfloat16)["gemm_gflops"]
    text = json.dumps(result, indent=1)
    if args.out:
        from finevl.data.jsonio import write_json_atomic

        write_json_atomic(args.out, result)
    print(text)


if __name__ == "__main__":
    main()
