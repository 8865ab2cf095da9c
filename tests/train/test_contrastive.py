"""The CLIP trainer: 2 processes step exactly as 1 process on the whole batch, and a killed
run resumes bit-for-bit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finevl.data.hard_negatives import negative_vocab
from finevl.errors import FinevlError
from finevl.train.config import ClipTrainConfig
from finevl.train.contrastive import train_clip
from finevl.train.launch import finevl_command
from finevl.train.loop import batch_indices, cosine_with_warmup

WEIGHTS = "checkpoint/model/open_clip_model.safetensors"


def _cfg(world: Path, out: Path, **kw) -> ClipTrainConfig:
    base = dict(data=str(world), out=str(out), steps=2, batch_size=16, warmup_steps=1, save_every=1, lr=1e-3)
    return ClipTrainConfig(**{**base, **kw})


def _weights_close(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a / WEIGHTS)), load_file(str(b / WEIGHTS))
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


@pytest.mark.parametrize("extra", [[], ["--hard-negatives", "2"]], ids=["plain", "hard-negatives"])
def test_two_processes_match_one_process_on_the_whole_batch(world, tmp_path, extra):
    args = [
        "clip",
        "train",
        *extra,
        "--data",
        str(world),
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--warmup-steps",
        "1",
        "--save-every",
        "1",
        "--precision",
        "fp32",  # the one-process run is the reference
    ]
    for name, processes in (("one", 1), ("two", 2)):
        cmd, env = finevl_command([*args, "--out", str(tmp_path / name)], processes)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s1["processes"] == 1 and s2["processes"] == 2
    assert s2["loss"] == pytest.approx(s1["loss"], rel=1e-5)
    assert s2["grad_norm"] == pytest.approx(s1["grad_norm"], rel=1e-4)  # AdamW would hide a 2x error
    # Adam divides by |g|, so float noise in near-zero gradients moves weights by a small
    # share of the lr; a real error (a doubled gradient, a schedule stepped twice) moves them by ~lr.
    assert _weights_close(tmp_path / "one", tmp_path / "two") < 0.05 * 1e-3


def test_killed_run_resumes_bit_for_bit(world, tmp_path):
    train_clip(_cfg(world, tmp_path / "straight", steps=5, save_every=2))

    def kill_after_step_3(_):
        kill_after_step_3.calls += 1
        if kill_after_step_3.calls == 4:
            raise KeyboardInterrupt

    kill_after_step_3.calls = 0
    cfg = _cfg(world, tmp_path / "killed", steps=5, save_every=2)
    with pytest.raises(KeyboardInterrupt):
        train_clip(cfg, progress=kill_after_step_3)
    assert json.loads((tmp_path / "killed/checkpoint/progress.json").read_text())["step"] == 2
    summary = train_clip(cfg, resume=True)
    assert summary["steps"] == 5
    assert _weights_close(tmp_path / "straight", tmp_path / "killed") == 0.0


def test_run_folder_and_settings_are_guarded(world, tmp_path):
    train_clip(_cfg(world, tmp_path / "r", steps=1))
    with pytest.raises(FinevlError, match="--resume"):
        train_clip(_cfg(world, tmp_path / "r", steps=1))
    with pytest.raises(FinevlError, match="different settings"):
        train_clip(_cfg(world, tmp_path / "r", steps=3, lr=5e-4), resume=True)
    with pytest.raises(FinevlError, match="batch-size"):
        train_clip(_cfg(world, tmp_path / "odd", batch_size=15, grad_accum=2))


def test_schedule_and_batches_are_deterministic():
    f = cosine_with_warmup(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(110) == pytest.approx(0.0)
    assert f(60) == pytest.approx(0.5)
    a, b = batch_indices(100, 16, 7, seed=1), batch_indices(100, 16, 7, seed=1)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 16
    epoch = [i for s in range(6) for i in batch_indices(100, 16, s, seed=1).tolist()]
    assert len(set(epoch)) == 96  # no repeats within an epoch


def test_grouped_batches_stay_in_one_group_and_are_seeded(world):
    from finevl.data.imagetext import load_image_text
    from finevl.train.contrastive import group_ids, grouped_batch_indices

    data = load_image_text(world, 64, split="train")
    groups = group_ids(data, "background")
    assert len(groups.unique()) > 1
    for step in range(5):
        idx = grouped_batch_indices(groups, 8, step, seed=0)
        assert len(idx) == 8 and len(set(idx.tolist())) == 8
        assert idx.tolist() == grouped_batch_indices(groups, 8, step, seed=0).tolist()
        seen = groups[idx].tolist()
        order = list(dict.fromkeys(seen))
        for gid in order[:-1]:  # every group but the last is taken whole, in one run
            assert seen.count(gid) == int((groups == gid).sum())
        assert seen == sorted(seen, key=order.index)


def test_negclip_loss_is_clip_loss_without_real_negatives_and_harder_with_them():
    import torch
    from open_clip import ClipLoss

    from finevl.train.negclip import NegClipLoss

    torch.manual_seed(0)
    img, txt = torch.nn.functional.normalize(torch.randn(2, 6, 8), dim=-1)
    scale = torch.tensor(10.0)
    plain = ClipLoss()(img, txt, scale)
    assert NegClipLoss()(img, txt, scale) == pytest.approx(plain.item())
    masked = NegClipLoss()(img, txt, scale, txt.flip(0), torch.zeros(6, dtype=torch.bool))
    assert masked.item() == pytest.approx(plain.item(), rel=1e-6)
    # a negative equal to the image's own caption: the image-to-text side cannot pick it
    hard = NegClipLoss()(img, txt, scale, txt.clone(), torch.ones(6, dtype=torch.bool))
    assert hard.item() > plain.item() + 0.2


def test_hard_negatives_need_facts_or_a_vocabulary(world, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    images = sorted((world / "images").glob("*.png"))[:8]
    pairs.write_text("".join(json.dumps({"image": str(p), "caption": "a red star"}) + "\n" for p in images))
    with pytest.raises(FinevlError, match="no facts to check negatives against; give --negative-vocab"):
        train_clip(
            _cfg(pairs, tmp_path / "r", hard_negatives=2, batch_size=4), default_vocab=negative_vocab()
        )
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps(negative_vocab().to_json()))
    summary = train_clip(
        _cfg(pairs, tmp_path / "v", hard_negatives=2, batch_size=4, negative_vocab=str(vocab))
    )
    assert summary["steps"] == 2
    with pytest.raises(FinevlError, match="--negative-vocab needs --hard-negatives"):
        _cfg(pairs, tmp_path / "x", negative_vocab=str(vocab))
    with pytest.raises(FinevlError, match="not a negative vocabulary"):
        pairs.with_name("bad.json").write_text('{"attributes": []}')
        train_clip(
            _cfg(pairs, tmp_path / "b", hard_negatives=1, negative_vocab=str(pairs.with_name("bad.json")))
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_a_clip_trains_on_the_gpu(world, tmp_path):
    """accelerate places the model on the GPU; Clip moves each batch there."""
    summary = train_clip(
        _cfg(world, tmp_path / "gpu", steps=2, hard_negatives=2), default_vocab=negative_vocab()
    )
    assert summary["steps"] == 2 and torch.isfinite(torch.tensor(summary["loss"]))
