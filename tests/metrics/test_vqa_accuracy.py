"""VQA answer normalisation (LLaVA's) and per-family exact-match accuracy."""

from __future__ import annotations

import pytest

from finevl.metrics.vqa import VqaAccuracy, normalize_answer


@pytest.mark.parametrize(
    ("raw", "norm"),
    [("Yes.", "yes"), ("Two", "2"), ("the red star", "red star"), ("An outlined heart!", "outlined heart"),
     ("3.5", "3.5"), ("1,000", "1000"), ("dont", "don't"), ("  Snow\n", "snow")],
)  # fmt: skip
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_accuracy_per_family_and_average_weights_families_equally():
    m = VqaAccuracy()
    for pred, gold in [("yes", "yes"), ("no", "yes"), ("no", "no"), ("no", "no")]:
        m.update(pred, gold, "attribute")
    m.update("3", "three", "count")
    out = m.compute()
    assert out["accuracy/attribute"] == 0.75 and out["accuracy/count"] == 1.0
    assert out["accuracy/average"] == pytest.approx(0.875)
    assert out["accuracy/all_questions"] == pytest.approx(0.8) and out["questions"] == 5
