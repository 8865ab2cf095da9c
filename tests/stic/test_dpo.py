"""Stage 1: corruption really applied, preference records and their filter, DPO through TRL
with our re-derived loss equal to TRL's on the same batch, LoRA save/load/merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from finevl.data.images import ImageCache
from finevl.models.lvlm import load_lvlm
from finevl.train.stic.config import DpoConfig, PrefsConfig
from finevl.train.stic.dpo import completion_logps, dpo_rows, dpo_sft_loss, dpo_trainer, upstream_loss
from finevl.train.stic.prefs import CORRUPTIONS, Preference, corrupt, filter_preferences, make_preferences


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_each_corruption_changes_the_image_and_keeps_its_size(world, kind):
    im = ImageCache(world)("images/00000000.png")
    bad = corrupt(im, kind, seed=1)
    assert bad.size == im.size
    assert np.abs(np.asarray(bad, float) - np.asarray(im, float)).mean() > 5


def _record(**kw) -> Preference:
    base = dict(id=0, image="images/00000000.png", prompt="<image>\nq", chosen="a", rejected="b",
                rejected_kind="hallucination", rejected_prompt="<image>\nq")  # fmt: skip
    return Preference(**{**base, **kw})


def test_filter_counts_missing_images_empty_answers_and_ties(world):
    records = [_record(), _record(image="images/nope.png"), _record(chosen=" "), _record(rejected="a")]
    kept, dropped = filter_preferences(records, world)
    assert kept == records[:1]
    assert dropped == {"missing_image": 1, "empty_answer": 1, "chosen_equals_rejected": 1}


def test_prefs_feed_the_corrupted_image_and_keep_the_image_token(tiny_lvlm_dir, world, tmp_path, monkeypatch):
    from finevl.models import lvlm as lvlm_module

    fed: list = []
    real = lvlm_module.Lvlm.generate

    def spy(self, images, questions, *a, **kw):
        fed.append(list(images))
        return real(self, images, questions, *a, **{**kw, "max_new_tokens": 3})

    monkeypatch.setattr(lvlm_module.Lvlm, "generate", spy)
    cfg = PrefsConfig(
        model=tiny_lvlm_dir, data=str(world), out=str(tmp_path / "p.jsonl"), images=8, corruption_share=0.5
    )
    summary = make_preferences(cfg)
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert summary["records"] == 8 and summary["corruption"] + summary["hallucination"] == 8
    assert all(r["prompt"].startswith("<image>\n") for r in rows)
    clean, rejected_inputs = fed
    for r, c, x in zip(rows, clean, rejected_inputs, strict=True):
        same = np.array_equal(np.asarray(c), np.asarray(x))
        assert same == (r["rejected_kind"] == "hallucination"), r
        assert r["corruption_applied"] == (r["rejected_kind"] == "corruption")


def _trainer(lvlm_dir, world, tmp_path, sft_weight=0.05):
    lvlm = load_lvlm(lvlm_dir)
    rejected = ["a blue circle .", "two green hearts on grass and sea ."]
    records = [
        _record(id=k, image=f"images/{k:08d}.png", chosen="a red star on snow .", rejected=rejected[k % 2])
        for k in range(4)
    ]
    cfg = DpoConfig(  # fp32 pinned: compared with TRL's own loss
        model=lvlm_dir,
        prefs="unused",
        out=str(tmp_path),
        batch_size=4,
        sft_weight=sft_weight,
        precision="fp32",
    )
    trainer = dpo_trainer(lvlm, dpo_rows(records, ImageCache(world)), cfg, tmp_path)
    torch.manual_seed(0)
    for name, p in trainer.model.named_parameters():  # a trained-looking adapter: policy != reference
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    return trainer, cfg


@pytest.mark.parametrize("tower", ["vit", "conv"])
def test_our_loss_equals_trls_on_the_same_batch(tower, request, world, tmp_path):
    lvlm_dir = request.getfixturevalue("tiny_lvlm_dir" if tower == "vit" else "conv_lvlm_dir")
    trainer, cfg = _trainer(lvlm_dir, world, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, batch)
        policy, mask = completion_logps(model, batch)
        with model.disable_adapter():
            reference, _ = completion_logps(model, batch)
    ours = dpo_sft_loss(policy, reference, mask, cfg.beta, cfg.sft_weight)
    assert (policy != reference).any()
    torch.testing.assert_close(ours, trl_loss.float(), atol=1e-5, rtol=1e-5)
    # upstream's sum/1024 regulariser differs; it is the same once sft_weight = tokens/1024
    tokens = mask.chunk(2)[0].sum()
    matched = dpo_sft_loss(policy, reference, mask, cfg.beta, float(tokens / 1024 / 4))
    torch.testing.assert_close(matched, upstream_loss(policy, reference, cfg.beta), atol=1e-5, rtol=1e-5)


def test_lora_adapter_saves_loads_and_merges_to_the_same_outputs(tiny_lvlm_dir, world, tmp_path):
    from peft import PeftModel

    trainer, _ = _trainer(tiny_lvlm_dir, world, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model.eval()
    with torch.no_grad():
        unmerged, _ = completion_logps(model, batch)
        model.save_pretrained(str(tmp_path / "adapter"))
        reloaded = PeftModel.from_pretrained(load_lvlm(tiny_lvlm_dir).model, str(tmp_path / "adapter")).eval()
        torch.testing.assert_close(completion_logps(reloaded, batch)[0], unmerged, atol=1e-5, rtol=1e-5)
        merged = reloaded.merge_and_unload()
        torch.testing.assert_close(completion_logps(merged, batch)[0], unmerged, atol=1e-4, rtol=1e-4)
