"""Atomic folder writes: build in a temporary sibling, then swap it into place."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def temp_sibling(out: str | Path, tag: str = "tmp") -> Path:
    """A fresh, empty temporary folder beside `out` (same file system, so renames are atomic)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{tag}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def replace_dir(tmp: Path, out: Path) -> None:
    """Put the finished folder `tmp` at `out`, replacing what was there: at every moment
    either the old or the new folder is complete at `out` (or beside it during the swap)."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def save_pretrained_atomic(out_dir: str | Path, *parts: Any) -> Path:
    """`save_pretrained` of each part (a model, its tokenizer or processor) into one folder,
    written atomically."""
    out_dir = Path(out_dir)
    tmp = temp_sibling(out_dir)
    for part in parts:
        part.save_pretrained(str(tmp))
    replace_dir(tmp, out_dir)
    return out_dir
