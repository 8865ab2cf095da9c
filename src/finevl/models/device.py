"""Where inference runs: `--device auto|cpu|cuda[:N]` and `--dtype auto|float32|bfloat16|float16`.

`auto` picks the first GPU when there is one, else the CPU; the `auto` dtype is bfloat16 on a
GPU that supports it (float16 on older ones) and float32 on the CPU, as Hugging Face's
`torch_dtype="auto"` would for a bf16 checkpoint. Embeddings and scores come back to the CPU
as float32, so every metric downstream reads the same numbers whatever the device.
"""

from __future__ import annotations

import os
import re

import torch

from finevl.errors import FinevlError

DEVICES = "auto, cpu, cuda or cuda:N"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
        if device is None or device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if spec not in DTYPES:
        raise FinevlError(f"--dtype {spec!r}: not one of auto, {', '.join(DTYPES)}")
    return DTYPES[spec]


def placement(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """(device, dtype) of a command's `--device` and `--dtype` options, checked together."""
    where = resolve_device(device)
    return where, resolve_dtype(dtype, where)
