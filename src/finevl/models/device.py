"""Where inference runs: `--device auto|cpu|cuda[:N]` and `--dtype auto|float32|bfloat16|float16`.

`auto` picks the first GPU when there is one, else the CPU. The `auto` dtype is the fastest
one that keeps the results: bfloat16 on a GPU that supports it (float16 on older ones) and on
a CPU with fast bf16 arithmetic (AMX or AVX512-BF16, as PyTorch reports them: its oneDNN
matmuls then run about 6x fp32's rate, docs/performance.md), float32 elsewhere. Embeddings
and scores come back to the CPU as float32, so every metric downstream reads the same
numbers whatever the device.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from finevl.errors import FinevlError

DEVICES = "auto, cpu, cuda or cuda:N"
LOADAVG = "/proc/loadavg"  # its 4th field: tasks running now / all tasks
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

logger = logging.getLogger(__name__)
_warned_slow_bf16 = False


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles or AVX512-BF16), as
    PyTorch reports it; without either, bf16 is emulated and slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def fast_low_precision(device: torch.device) -> torch.dtype:
    """The low-precision dtype that is fast on `device`, or float32 when none is."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else torch.float32


def _warn_if_slow(dtype: torch.dtype, device: torch.device | None) -> None:
    """One warning line (once per process) for bf16 asked of a CPU that only emulates it."""
    global _warned_slow_bf16
    on_cpu = device is None or device.type == "cpu"
    if dtype == torch.bfloat16 and on_cpu and not cpu_has_fast_bf16() and not _warned_slow_bf16:
        _warned_slow_bf16 = True
        logger.warning("this CPU has no fast bf16 (no AMX or AVX512-BF16): bfloat16 runs, slowly")


def resolve_device(spec: str = "auto") -> torch.device:
    """The torch device a `--device` value names; a GPU that is not there is one clear error."""
    spec = spec.strip().lower()
    rank = int(os.environ.get("LOCAL_RANK", -1))
    if spec in ("auto", "cuda") and torch.cuda.is_available() and 0 <= rank < torch.cuda.device_count():
        return torch.device("cuda", rank)  # accelerate launch: one GPU per process
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")  # no index: see below
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise FinevlError(f"--device {spec!r}: not one of {DEVICES}")
    index = int(match.group(1) or 0)
    if not torch.cuda.is_available():
        raise FinevlError(f"--device {spec}: no CUDA GPU on this machine (use --device cpu or auto)")
    if index >= torch.cuda.device_count():
        raise FinevlError(f"--device {spec}: this machine has {torch.cuda.device_count()} GPU(s)")
    # no index: the current GPU for a small model, every GPU for a sharded one (device_map)
    return torch.device("cuda", index) if match.group(1) else torch.device("cuda")


def resolve_dtype(spec: str = "auto", device: torch.device | None = None) -> torch.dtype:
    """The torch dtype a `--dtype` value names on `device`."""
    spec = spec.strip().lower()
    if spec == "auto":
        return fast_low_precision(device or torch.device("cpu"))
    if spec not in DTYPES:
        raise FinevlError(f"--dtype {spec!r}: not one of auto, {', '.join(DTYPES)}")
    _warn_if_slow(DTYPES[spec], device)
    return DTYPES[spec]


def dtype_name(dtype: torch.dtype) -> str:
    """`torch.bfloat16` as results JSON records it: `bfloat16`."""
    return str(dtype).removeprefix("torch.")


def placement(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """(device, dtype) of a command's `--device` and `--dtype` options, checked together."""
    where = resolve_device(device)
    return where, resolve_dtype(dtype, where)


def free_cores() -> int:
    """Cores not running another process's task right now (Linux's instantaneous run queue in
    /proc/loadavg less this process's running threads); all of them where it cannot tell."""
    total = os.cpu_count() or 1
    try:
        with open(LOADAVG, encoding="ascii") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return total
    return max(1, total - max(0, running - _own_running_threads()))


def _own_running_threads() -> int:
    """This process's threads on a core now (its OpenMP workers spin between regions)."""
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            running += stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return max(1, running)


@contextmanager
def threads_for_load() -> Iterator[None]:
    """CPU inference on as many threads as there are free cores (at most torch's setting):
    an OpenMP thread that shares its core with another process stalls every parallel region
    of the others, so on a busy machine fewer threads run faster (docs/clip.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, free_cores()))
    try:
        yield
    finally:
        torch.set_num_threads(before)
