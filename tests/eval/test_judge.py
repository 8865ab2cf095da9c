"""The editing benchmark's attribute judge: it learns the world's colours, patterns, sizes
and backgrounds from masked crops, saves and loads, and refuses an empty mask."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from finevl.errors import FinevlError
from finevl.eval.judge import JudgeTrainConfig, judge_accuracy, judge_examples, train_attribute_judge
from finevl.models.attribute_judge import HEADS, context_window, load_attribute_judge, object_crop


def test_the_judge_learns_attributes_and_round_trips(world, tmp_path):
    cfg = JudgeTrainConfig(data=str(world), out=str(tmp_path / "run"), steps=120, batch_size=64)
    judge, summary = train_attribute_judge(cfg)
    assert set(summary["val_accuracy"]) == set(HEADS)
    views, targets = judge_examples(world, "train")
    fitted = judge_accuracy(judge, views, targets)  # a capacity check on the data it saw, not a result
    assert fitted["color"] > 0.5 and fitted["background"] > 0.5
    again = load_attribute_judge(judge.save(tmp_path / "judge"))
    first = {k: v[:4] for k, v in views.items()}
    assert torch.allclose(judge(first)["size"], again(first)["size"])


def test_the_context_window_keeps_the_object_scale():
    pixels = torch.zeros(3, 64, 64)
    small, large = torch.zeros(64, 64, dtype=torch.bool), torch.zeros(64, 64, dtype=torch.bool)
    small[30:34, 30:34], large[20:44, 20:44] = True, True
    for mask in (small, large):
        pixels[:, mask] = 1.0
    # the crop of each object fills the view; the fixed window shows their sizes apart
    crops = [float(object_crop(pixels, m).mean()) for m in (small, large)]
    assert crops[0] == pytest.approx(crops[1], abs=0.05)
    assert float(context_window(pixels, large).mean()) > 4 * float(
        context_window(pixels * small, small).mean()
    )


def test_an_empty_mask_is_refused():
    with pytest.raises(FinevlError, match="empty mask"):
        object_crop(torch.rand(3, 16, 16), torch.from_numpy(np.zeros((16, 16), bool)))


def test_a_folder_of_other_labels_or_weights_is_one_error(tmp_path):
    from safetensors.torch import save_file

    from finevl.eval.judge import judge_labels

    (tmp_path / "judge_config.json").write_text('{"labels": {"color": ["red"]}}')
    save_file({"x": torch.zeros(1)}, tmp_path / "judge.safetensors")
    with pytest.raises(FinevlError, match="the judge's labels are"):
        load_attribute_judge(tmp_path)
    (tmp_path / "judge_config.json").write_text(json.dumps({"labels": judge_labels()}))
    with pytest.raises(FinevlError, match="the weights do not fit this judge"):
        load_attribute_judge(tmp_path)
