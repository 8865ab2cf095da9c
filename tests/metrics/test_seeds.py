"""Results over seeds: mean and sample standard deviation, 0 for one seed."""

import math

from finevl.metrics.seeds import mean_std


def test_mean_and_sample_std():
    assert mean_std([1.0, 3.0]) == {"mean": 2.0, "std": math.sqrt(2.0)}
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0}
