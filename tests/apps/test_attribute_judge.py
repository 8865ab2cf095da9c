"""The editing benchmark's attribute judge: it learns the world's colours, patterns and
backgrounds from masked crops, saves and loads, and refuses an empty mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finevl.errors import FinevlError
from finevl.models.attribute_judge import load_attribute_judge, object_crop
from finevl.train.judge import judge_accuracy, judge_examples, train_attribute_judge


def test_the_judge_learns_attributes_and_round_trips(world, tmp_path):
    judge, summary = train_attribute_judge(world, steps=120, batch_size=64)
    assert set(summary["val_accuracy"]) == {"color", "pattern", "background"}
    train = judge_examples(world, "train")
    fitted = judge_accuracy(judge, *train)  # a capacity check on the data it saw, not a result
    assert fitted["color"] > 0.5 and fitted["background"] > 0.5
    again = load_attribute_judge(judge.save(tmp_path / "judge"))
    crops, scenes, _ = train
    assert torch.allclose(judge(crops[:4], scenes[:4])["color"], again(crops[:4], scenes[:4])["color"])


def test_an_empty_mask_is_refused():
    with pytest.raises(FinevlError, match="empty mask"):
        object_crop(torch.rand(3, 16, 16), torch.from_numpy(np.zeros((16, 16), bool)))
