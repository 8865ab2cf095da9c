"""The C heap of a training process: freed memory kept for the next step.

glibc hands freed blocks above a moving threshold back to the operating system (and trims
the heap's free top above 128 KiB), so a training step that frees and re-allocates its
activations touches fresh pages again, one page fault per 4 KiB. Where that threshold ends up
depends on the process's allocation history, so two runs of the same loop can differ by 5 %:
the STIC lm stage took 505 k minor page faults in 60 steps against 294 k for the same steps
after other setup code (docs/training.md). Fixed thresholds make a step's memory come from,
and go back to, the heap.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its moving threshold
TRIM_THRESHOLD = 1 << 30
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
OPT_OUT = "FINEVL_KEEP_FREED_MEMORY"  # "0": glibc's own moving thresholds


def keep_freed_memory(libc: object | None = None) -> bool:
    """Fix glibc's mmap and trim thresholds for this process (blocks under 32 MiB from the
    heap, up to 1 GiB of free heap kept); True when set. Left alone off Linux, without
    glibc, when the user set either threshold in the environment, or with
    FINEVL_KEEP_FREED_MEMORY=0."""
    if sys.platform != "linux" or os.environ.get(OPT_OUT) == "0":
        return False
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    if libc is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt  # noqa: B018 - musl and others have no mallopt
        except (OSError, AttributeError):
            return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
