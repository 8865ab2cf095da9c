"""The conv tower preset, the attribute trainer (tower or linear probe) and LiT."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from finevl.data.hard_negatives import negative_vocab
from finevl.errors import FinevlError
from finevl.models.clip import load_clip
from finevl.train.config import ClipTrainConfig, TowerTrainConfig
from finevl.train.contrastive import train_clip
from finevl.train.tower import AttributeProbe, train_tower

WEIGHTS = "checkpoint/model/open_clip_model.safetensors"


def test_conv_tower_is_an_open_clip_preset_with_four_stage_maps(tmp_path):
    torch.manual_seed(0)
    clip = load_clip("finevl-tiny-conv")
    saved = clip.save(tmp_path / "ckpt")
    config = json.loads((saved / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["timm_model_name"] == "finevl_convstages_s"
    again = load_clip(saved).eval()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(clip.eval().encode_image(pixels), again.encode_image(pixels), atol=1e-6)
    maps = again.inner.visual.trunk.forward_intermediates(pixels, intermediates_only=True)
    assert [m.shape[1:] for m in maps] == [(32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4)]
    info = again.inner.visual.trunk.feature_info
    assert [f["reduction"] for f in info] == [2, 4, 8, 16]


def test_probe_loss_is_cross_entropy_per_attribute_over_present_values():
    probe = AttributeProbe(load_clip("finevl-tiny-conv"), {"shape": ["a", "b"], "color": ["x", "y", "z"]})
    logits = torch.tensor([[2.0, 0.0, 0.0, 1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0]])  # one shape; two colours present
    want = torch.nn.functional.cross_entropy(logits[:, :2], torch.tensor([0])) + (
        -0.5 * torch.log_softmax(logits[:, 2:], -1)[0, 1:].sum()
    )
    assert probe.loss(logits, targets).item() == pytest.approx(want.item(), rel=1e-6)


def _tower_cfg(world, out, **kw) -> TowerTrainConfig:
    base = dict(
        data=str(world), out=str(out), model="finevl-tiny-conv", steps=3, batch_size=8, warmup_steps=1
    )
    return TowerTrainConfig(**{**base, **kw})


def test_linear_probe_leaves_the_tower_and_training_changes_it(world, tmp_path):
    start = load_clip("finevl-tiny-conv").save(tmp_path / "start")
    before = load_file(str(start / "open_clip_model.safetensors"))
    for freeze in (True, False):
        out = tmp_path / f"freeze-{freeze}"
        summary = train_tower(_tower_cfg(world, out, model=str(start), freeze=freeze, eval_split="val"))
        assert set(summary["metrics"]) == {"shape", "color", "size", "pattern", "background"}
        assert 0.0 <= summary["metrics"]["background"]["acc1"] <= 1.0
        assert all(m["acc1"] is None or 0.0 <= m["acc1"] <= 1.0 for m in summary["metrics"].values())
        after = load_file(str(out / WEIGHTS))
        changed = [k for k in before if k.startswith("visual.") and not torch.equal(before[k], after[k])]
        assert (not changed) if freeze else changed, freeze
        assert (out / "checkpoint/model/attribute_head.safetensors").is_file()
    with pytest.raises(FinevlError, match="unknown attribute"):
        train_tower(_tower_cfg(world, tmp_path / "bad", attributes="shape,smell"))


def test_lit_keeps_the_image_tower_and_trains_the_text_tower(world, tmp_path):
    start = load_clip("finevl-tiny-conv").save(tmp_path / "start")
    before = load_file(str(start / "open_clip_model.safetensors"))
    cfg = ClipTrainConfig(
        data=str(world), out=str(tmp_path / "lit"), model=str(start), steps=2, batch_size=8,
        warmup_steps=1, lock_image=True, hard_negatives=2,
    )  # fmt: skip
    train_clip(cfg, default_vocab=negative_vocab())
    after = load_file(str(tmp_path / "lit" / WEIGHTS))
    image = [k for k in before if k.startswith("visual.")]
    assert image and all(torch.equal(before[k], after[k]) for k in image)  # batch-norm statistics too
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("transformer."))
