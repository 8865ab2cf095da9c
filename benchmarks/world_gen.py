"""Benchmark of the FineShapes world generator: throughput and memory, as JSON.

Run as `make bench`, or directly::

    .venv/bin/python benchmarks/world_gen.py --out benchmarks/results/world_gen.json

Figures, all at one image size (`--size`, 96 by default):

1. `annotate_images_per_s`: `build_image` (scene sampling, rendering, masks as COCO RLE,
   captions, facts, regions, VQA) over a spawn-context pool of `--workers` processes, warm-up
   excluded; also in one process for reference.
2. `png_encode_images_per_s`: `encode_png` alone, in one process and over the pool.
3. `end_to_end_images_per_s`: `generate_world` wall time, process start-up included.
4. `memory`: peak RSS of `generate_world` run in a fresh subprocess for a small and a large N,
   for the main process and for its workers; memory is flat in N when large/small stays low.

`--quick` makes every N small, for a smoke run. `--child N` is the internal mode used for (4).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finevl.data.jsonio import write_json_atomic
from finevl.world.annotate import build_image
from finevl.world.generate import WorldConfig, encode_png, generate_world
from finevl.world.render import texture_bank

SEED = 0
CHUNK = 128  # images per pool task, as in the generator
PNG_POOL = 64  # distinct images cycled through by the PNG benchmark
TARGETS = {"annotate_images_per_s_min": 1000, "rss_ratio_max": 1.2}
QUICK = {"n_annotate": 400, "n_png": 400, "n_end_to_end": 500, "mem_small": 300, "mem_large": 1500}

# Per-process state of pool workers, set by `_init_worker`.
_STATE: dict[str, Any] = {}


def _init_worker(size: int) -> None:
    """Warm a process: texture bank and other caches, plus a set of images to encode."""
    texture_bank(size)
    _STATE["size"] = size
    _STATE["pixels"] = [build_image(SEED, i, size)[0] for i in range(PNG_POOL)]


def _pid(delay: float) -> int:
    """This worker's pid, after a short sleep so that one task cannot take all the pings."""
    time.sleep(delay)
    return os.getpid()


def _annotate_range(bounds: tuple[int, int]) -> int:
    """Build images `start..stop-1` (records stay in the worker); the number built."""
    start, stop = bounds
    size = _STATE["size"]
    for image_id in range(start, stop):
        build_image(SEED, image_id, size)
    return stop - start


def _encode_range(bounds: tuple[int, int]) -> int:
    """PNG-encode `stop-start` of the worker's warm images, cycling through them; the number."""
    start, stop = bounds
    pixels = _STATE["pixels"]
    for i in range(start, stop):
        encode_png(pixels[i % len(pixels)])
    return stop - start


def _chunks(n: int, chunk: int = CHUNK) -> list[tuple[int, int]]:
    """`[(start, stop), ...]` covering `range(n)` in pieces of `chunk`."""
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def _rate(n: int, seconds: float) -> float:
    """Images per second, rounded."""
    return round(n / seconds, 1)


def _time_serial(task: Callable[[tuple[int, int]], int], n: int) -> float:
    """Images/s of `task` over `n` images in this (already warmed) process."""
    t0 = time.perf_counter()
    done = sum(task(b) for b in _chunks(n))
    return _rate(done, time.perf_counter() - t0)


def _warm_pool(pool: Any, workers: int) -> None:
    """Return once every worker has started and run its initializer."""
    seen: set[int] = set()
    while len(seen) < workers:
        seen.update(pool.map(_pid, [0.05] * (4 * workers), chunksize=1))


def _time_pool(task: Callable[[tuple[int, int]], int], n: int, size: int, workers: int) -> float:
    """Images/s of `task` over `n` images on a warmed spawn pool; start-up excluded."""
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(size,)) as pool:
        _warm_pool(pool, workers)
        t0 = time.perf_counter()
        done = sum(pool.map(task, _chunks(n), chunksize=1))
        return _rate(done, time.perf_counter() - t0)


def bench_throughput(n_annotate: int, n_png: int, size: int, workers: int) -> dict[str, Any]:
    """Annotation and PNG-encoding throughput, in one process and over `workers` processes."""
    _init_worker(size)
    return {
        "annotate_images_per_s": _time_pool(_annotate_range, n_annotate, size, workers),
        "annotate_images_per_s_1proc": _time_serial(_annotate_range, n_annotate),
        "annotate_n": n_annotate,
        "png_encode_images_per_s": _time_pool(_encode_range, n_png, size, workers),
        "png_encode_images_per_s_1proc": _time_serial(_encode_range, n_png),
        "png_encode_n": n_png,
    }


def bench_end_to_end(n: int, size: int, workers: int, tmp_root: str | None) -> dict[str, Any]:
    """Wall time of `generate_world` for `n` images into a temporary folder (then deleted)."""
    tmp = tempfile.mkdtemp(prefix="world_gen_bench.", dir=tmp_root)
    try:
        t0 = time.perf_counter()
        generate_world(
            WorldConfig(n=n, size=size, seed=SEED), Path(tmp) / "world", workers=workers, overwrite=True
        )
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "end_to_end_images_per_s": _rate(n, seconds),
        "end_to_end_seconds": round(seconds, 2),
        "end_to_end_n": n,
        "end_to_end_note": "generate_world wall time, worker process start-up and all file writing included",
    }


def _peak_mb(who: int) -> float:
    """Peak RSS in MB of this process (RUSAGE_SELF) or its largest reaped child (RUSAGE_CHILDREN)."""
    kib = resource.getrusage(who).ru_maxrss  # kilobytes on Linux
    return round(kib / 1024, 1)


def run_child(n: int, size: int, workers: int, out: str) -> dict[str, Any]:
    """Child mode: generate `n` images into `out`; wall time and peak RSS of self and workers."""
    t0 = time.perf_counter()
    generate_world(WorldConfig(n=n, size=size, seed=SEED), out, workers=workers, overwrite=True)
    return {
        "n": n,
        "seconds": round(time.perf_counter() - t0, 2),
        "main_peak_rss_mb": _peak_mb(resource.RUSAGE_SELF),
        "workers_peak_rss_mb": _peak_mb(resource.RUSAGE_CHILDREN),
    }


def _spawn_child(n: int, size: int, workers: int, tmp_root: str | None) -> dict[str, Any]:
    """Run this script's `--child` mode in a fresh interpreter; delete its world afterwards."""
    tmp = tempfile.mkdtemp(prefix="world_gen_mem.", dir=tmp_root)
    try:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), "--size", str(size)]
        cmd += ["--workers", str(workers), "--child-out", str(Path(tmp) / "world")]
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(small: int, large: int, size: int, workers: int, tmp_root: str | None) -> dict[str, Any]:
    """Peak RSS of `generate_world` for a small and a large N, and the ratios large/small."""
    runs = {
        "small": _spawn_child(small, size, workers, tmp_root),
        "large": _spawn_child(large, size, workers, tmp_root),
    }
    ratio = {
        who: round(runs["large"][f"{who}_peak_rss_mb"] / runs["small"][f"{who}_peak_rss_mb"], 3)
        for who in ("main", "workers")
    }
    return {
        "small": runs["small"],
        "large": runs["large"],
        "rss_ratio_main": ratio["main"],
        "rss_ratio_workers": ratio["workers"],
        "note": "fresh subprocess per N; main: ru_maxrss of RUSAGE_SELF, "
        "workers: ru_maxrss of RUSAGE_CHILDREN (the largest worker)",
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def verdict(results: dict[str, Any]) -> dict[str, bool]:
    """Which targets were met."""
    mem, ratio_max = results["memory"], TARGETS["rss_ratio_max"]
    return {
        "annotate_images_per_s": results["annotate_images_per_s"] >= TARGETS["annotate_images_per_s_min"],
        "rss_ratio_main": mem["rss_ratio_main"] <= ratio_max,
        "rss_ratio_workers": mem["rss_ratio_workers"] <= ratio_max,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--quick` replaces every N by a small one."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/world_gen.json"), help="JSON file to write."
    )
    p.add_argument("--size", type=int, default=96, help="Image side in pixels.")
    p.add_argument("--workers", type=int, default=2, help="Worker processes.")
    p.add_argument("--n-annotate", type=int, default=4000, help="Images for the annotation benchmark.")
    p.add_argument("--n-png", type=int, default=4000, help="Images for the PNG benchmark.")
    p.add_argument("--n-end-to-end", type=int, default=5000, help="Images for the generate_world benchmark.")
    p.add_argument("--mem-small", type=int, default=5000, help="Small N of the memory benchmark.")
    p.add_argument("--mem-large", type=int, default=50000, help="Large N of the memory benchmark.")
    p.add_argument("--tmp-dir", default=None, help="Where temporary worlds go (default: the system's).")
    p.add_argument("--quick", action="store_true", help="Small Ns everywhere, for a smoke run.")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, write the JSON atomically to `--out` and print it."""
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(args.child, args.size, args.workers, args.child_out)))
        return 0
    results = bench_throughput(args.n_annotate, args.n_png, args.size, args.workers)
    results.update(bench_end_to_end(args.n_end_to_end, args.size, args.workers, args.tmp_dir))
    results["memory"] = bench_memory(args.mem_small, args.mem_large, args.size, args.workers, args.tmp_dir)
    report = {
        "benchmark": "world_gen",
        "machine": machine(),
        "size": args.size,
        "workers": args.workers,
        "quick": args.quick,
        "results": results,
        "targets": TARGETS,
        "passed": verdict(results),
    }
    write_json_atomic(args.out, report, indent=2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
