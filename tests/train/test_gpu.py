"""Every trainer on a GPU: a tiny model of each kind takes two bf16 steps on CUDA through the
one `Trainer`, and two GPUs step as one (DDP). Skipped, with the reason, without a GPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from finevl.data.tokenizer import train_word_tokenizer
from finevl.models.clip import load_clip
from finevl.models.lvlm import CHAT_WORDS, build_lvlm
from finevl.train import config as C
from finevl.train.stic.data import lm_texts, split_texts
from finevl.train.stic.prompts import all_prompts

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]
STEPS = dict(steps=2, batch_size=8, warmup_steps=1, precision="bf16")


@pytest.fixture(scope="module")
def towers(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("towers")
    torch.manual_seed(0)
    return {name: str(load_clip(name).save(root / name)) for name in ("finevl-tiny-vit", "finevl-tiny-conv")}


def _trainers(world: Path, towers: dict[str, str], root: Path) -> dict[str, tuple]:
    from finevl.eval.judge import JudgeTrainConfig, train_attribute_judge
    from finevl.train.grammar import train_grammar
    from finevl.train.mle import train_captioner
    from finevl.train.region.config import RegionTrainConfig
    from finevl.train.region.stages import train_region_stage
    from finevl.train.tower import train_tower

    vit, conv, data = towers["finevl-tiny-vit"], towers["finevl-tiny-conv"], str(world)
    return {
        "tower": (train_tower, C.TowerTrainConfig(data=data, model=conv, out=str(root / "tower"), **STEPS)),
        "mle": (train_captioner, C.CaptionTrainConfig(data=data, clip=vit, out=str(root / "mle"), **STEPS)),
        "grammar": (train_grammar, C.GrammarTrainConfig(data=data, clip=vit, out=str(root / "g"), **STEPS)),
        "region": (
            train_region_stage,
            RegionTrainConfig(data=data, clip=conv, stage="lm", images=8, out=str(root / "r"), **STEPS),
        ),
        "judge": (
            lambda cfg: train_attribute_judge(cfg)[1],
            JudgeTrainConfig(data=data, out=str(root / "judge"), **STEPS),
        ),
    }


@pytest.mark.parametrize("name", ["tower", "mle", "grammar", "region", "judge"])
def test_each_trainer_takes_bf16_steps_on_the_gpu(name, world, towers, tmp_path):
    train, cfg = _trainers(world, towers, tmp_path)[name]
    summary = train(cfg)
    assert summary["steps"] == 2 and math.isfinite(summary["loss"])


def test_scst_and_stic_stages_take_bf16_steps_on_the_gpu(world, towers, tmp_path):
    from finevl.train.mle import train_captioner
    from finevl.train.scst import train_scst
    from finevl.train.stic.config import SupervisedConfig
    from finevl.train.stic.sft import train_supervised

    vit, data = towers["finevl-tiny-vit"], str(world)
    train_captioner(C.CaptionTrainConfig(data=data, clip=vit, out=str(tmp_path / "mle"), **STEPS))
    model = str(tmp_path / "mle" / "checkpoint" / "model")
    scst = C.ScstConfig(
        data=data, model=model, out=str(tmp_path / "scst"), samples=2, max_new_tokens=6, **STEPS
    )
    assert math.isfinite(train_scst(scst)["loss"])
    tok = train_word_tokenizer(
        split_texts(world, "train") + all_prompts() + [CHAT_WORDS], tmp_path / "tok", 256
    )
    lvlm = build_lvlm(load_clip(vit), tok, "tiny", seed=0)
    sft = SupervisedConfig(data=data, out=str(tmp_path / "sft"), train="lm", **STEPS)
    assert math.isfinite(train_supervised(sft, lm_texts(world, "train"), start=lvlm)["loss"])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_step_as_one(world, towers, tmp_path):
    """DDP on two GPUs: a linear probe's loss and gradient norm equal one GPU's on the whole batch."""
    args = ["clip", "tower", "--data", str(world), "--model", towers["finevl-tiny-conv"], "--freeze"]
    args += ["--steps", "2", "--batch-size", "16", "--warmup-steps", "1", "--precision", "fp32"]
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
    ]
    for name, processes in (("one", 1), ("two", 2)):
        multi = ["--multi_gpu"] if processes > 1 else []
        cmd = [*launch, *multi, "--num_processes", str(processes), "-m", "finevl.cli", *args]
        done = subprocess.run([*cmd, "--out", str(tmp_path / name)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    one, two = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("one", "two"))
    assert two["processes"] == 2
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-3)
