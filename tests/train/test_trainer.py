"""The one training loop (`finevl.train.trainer.Trainer`) for the supervised trainers: N
processes and gradient accumulation step as one process on the whole batch; precision."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finevl.errors import FinevlError
from finevl.models.clip import load_clip
from finevl.train.config import TowerTrainConfig
from finevl.train.launch import finevl_command
from finevl.train.tower import train_tower

HEAD = "checkpoint/model/attribute_head.safetensors"


@pytest.fixture(scope="module")
def conv_clip(tmp_path_factory) -> str:
    torch.manual_seed(0)
    return str(load_clip("finevl-tiny-conv").save(tmp_path_factory.mktemp("conv") / "clip"))


def _probe_args(world: Path, clip: str, out: Path, *extra: str) -> list[str]:
    # a linear probe: the frozen tower keeps its batch-norm statistics, so the loss is a
    # mean over images and a share of the batch computes exactly its part of it; fp32 pinned,
    # as the one-process run is the reference
    settings = [
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--warmup-steps",
        "1",
        "--lr",
        "0.01",
        "--precision",
        "fp32",
    ]
    return [
        "clip",
        "tower",
        "--data",
        str(world),
        "--model",
        clip,
        "--freeze",
        "--out",
        str(out),
        *settings,
        *extra,
    ]


def _head_difference(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a / HEAD)), load_file(str(b / HEAD))
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def test_two_processes_and_accumulation_match_one_process_on_the_whole_batch(world, conv_clip, tmp_path):
    runs = {"one": ((), 1), "two": ((), 2), "accum": (("--grad-accum", "2"), 1)}
    for name, (extra, processes) in runs.items():
        cmd, env = finevl_command(_probe_args(world, conv_clip, tmp_path / name, *extra), processes)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    summaries = {name: json.loads((tmp_path / name / "summary.json").read_text()) for name in runs}
    assert summaries["two"]["processes"] == 2
    for name in ("two", "accum"):
        assert summaries[name]["loss"] == pytest.approx(summaries["one"]["loss"], rel=1e-5)
        assert summaries[name]["grad_norm"] == pytest.approx(summaries["one"]["grad_norm"], rel=1e-4)
        # Adam divides by |g|: float noise moves weights by a small share of the lr, a real
        # error (a doubled gradient, a share left out) by about the lr
        assert _head_difference(tmp_path / "one", tmp_path / name) < 0.05 * 0.01


def test_bf16_autocast_trains_on_the_cpu_and_fp16_needs_a_gpu(world, conv_clip, tmp_path):
    base = dict(data=str(world), model=conv_clip, steps=2, batch_size=8, warmup_steps=1, freeze=True)
    summary = train_tower(TowerTrainConfig(**base, out=str(tmp_path / "bf16"), precision="bf16"))
    fp32 = train_tower(TowerTrainConfig(**base, out=str(tmp_path / "fp32"), precision="fp32"))
    assert summary["loss"] != fp32["loss"]  # autocast really ran in bf16
    assert summary["loss"] == pytest.approx(fp32["loss"], rel=0.05)
    if not torch.cuda.is_available():
        with pytest.raises(FinevlError, match="fp16 needs a GPU"):
            train_tower(TowerTrainConfig(**base, out=str(tmp_path / "fp16"), precision="fp16"))
    with pytest.raises(FinevlError, match="--precision must be one of"):
        TowerTrainConfig(**base, out=str(tmp_path / "x"), precision="fp8")


@pytest.mark.parametrize("fast_bf16", [True, False], ids=["amx", "no-bf16"])
def test_auto_precision_is_what_the_run_folder_records(world, conv_clip, tmp_path, monkeypatch, fast_bf16):
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: fast_bf16)
    cfg = TowerTrainConfig(data=str(world), model=conv_clip, out=str(tmp_path / "run"), steps=1, batch_size=8)
    expected = "bf16" if fast_bf16 or torch.cuda.is_available() else "fp32"
    assert cfg.precision == expected
    train_tower(cfg)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == expected
    # a run resumed at another precision is refused, naming the setting
    other = "fp32" if expected == "bf16" else "bf16"
    with pytest.raises(FinevlError, match=f"precision '{expected}' there, '{other}' here"):
        train_tower(TowerTrainConfig(**{**vars(cfg), "precision": other}), resume=True)


def test_a_batch_that_does_not_split_evenly_is_refused(world, conv_clip, tmp_path):
    cfg = TowerTrainConfig(
        data=str(world), model=conv_clip, out=str(tmp_path / "r"), batch_size=9, grad_accum=2
    )
    with pytest.raises(FinevlError, match="must divide by processes x --grad-accum"):
        train_tower(cfg)
