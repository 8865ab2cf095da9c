"""Results over seeds: the mean and sample standard deviation the benchmarks report."""

from __future__ import annotations

import statistics


def mean_std(values: list[float]) -> dict[str, float]:
    """{"mean", "std"} of one score over seeds (std 0 for a single seed)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
