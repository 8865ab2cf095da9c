"""Every single-process trainer survives SIGKILL: a run killed (a real SIGKILL, at a known
step, in a child process) after its step-2 checkpoint leaves that checkpoint loadable, and
`resume` finishes bit-for-bit like a run that was never killed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# The child: run a trainer and SIGKILL itself inside the 4th step's progress callback (after
# the checkpoint of step 2, before the one of step 4).
CHILD = """
import json, os, signal, sys
from finevl.train import config as C
module, func, cls, kw = json.loads(sys.argv[1])
import importlib
train = getattr(importlib.import_module(module), func)
calls = [0]
def progress(_):
    calls[0] += 1
    if calls[0] == 4:
        os.kill(os.getpid(), signal.SIGKILL)
train(getattr(C, cls)(**kw), progress=progress)
"""

COMMON = dict(steps=5, save_every=2, batch_size=8, warmup_steps=1, log_every=1)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> str:
    from finevl.models.clip import load_clip

    torch.manual_seed(0)
    return str(load_clip("finevl-tiny-vit").save(tmp_path_factory.mktemp("clip") / "clip"))


@pytest.fixture(scope="module")
def captioner_dir(world, clip_dir, tmp_path_factory) -> str:
    from finevl.train.config import CaptionTrainConfig
    from finevl.train.mle import train_captioner

    out = tmp_path_factory.mktemp("mle") / "run"
    train_captioner(CaptionTrainConfig(data=str(world), out=str(out), clip=clip_dir, steps=1, batch_size=4))
    return str(out / "checkpoint" / "model")


def _trainers(world: Path, clip_dir: str, captioner: str) -> dict[str, tuple[str, str, str, dict]]:
    data = str(world)
    return {
        "mle": ("finevl.train.mle", "train_captioner", "CaptionTrainConfig", dict(data=data, clip=clip_dir)),
        "grammar": (
            "finevl.train.grammar",
            "train_grammar",
            "GrammarTrainConfig",
            dict(data=data, clip=clip_dir),
        ),
        "scst": (
            "finevl.train.scst",
            "train_scst",
            "ScstConfig",
            dict(data=data, model=captioner, samples=2, max_new_tokens=6),
        ),
    }


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    found = sorted(folder.rglob("*.safetensors"))
    assert found, folder
    return {f"{p.relative_to(folder)}:{k}": v for p in found for k, v in load_file(str(p)).items()}


@pytest.mark.parametrize("name", ["mle", "grammar", "scst"])
def test_sigkilled_trainer_resumes_bit_for_bit(name, world, clip_dir, captioner_dir, tmp_path):
    import importlib

    from finevl.train import config as configs

    module, func, cls, kw = _trainers(world, clip_dir, captioner_dir)[name]
    train = getattr(importlib.import_module(module), func)
    settings = {**COMMON, **kw}
    train(getattr(configs, cls)(**settings, out=str(tmp_path / "straight")))

    killed = tmp_path / "killed"
    arg = json.dumps([module, func, cls, {**settings, "out": str(killed)}])
    done = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr[-2000:]  # it really was SIGKILLed
    assert json.loads((killed / "checkpoint" / "progress.json").read_text())["step"] == 2
    assert not (killed / "summary.json").exists()
    _weights(killed / "checkpoint" / "model")  # the previous checkpoint loads

    summary = train(getattr(configs, cls)(**settings, out=str(killed)), resume=True)
    assert summary["steps"] == 5
    assert not [p.name for p in killed.iterdir() if p.name.startswith(".checkpoint.")]  # no temporaries
    straight, resumed = (
        _weights(tmp_path / "straight" / "checkpoint" / "model"),
        _weights(killed / "checkpoint" / "model"),
    )
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_a_run_folder_from_before_a_new_setting_resumes_as_its_default(tmp_path):
    """config.json written before `precision`/`grad_accum` existed: those read as their
    defaults (the run's behaviour then), so resume goes on; any real difference is refused."""
    from dataclasses import dataclass

    from finevl.errors import FinevlError
    from finevl.train.loop import open_run_folder

    @dataclass
    class Settings:
        lr: float = 1e-3
        precision: str = "fp32"
        grad_accum: int = 1
        max_minutes: float = 0.0

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"lr": 1e-3, "max_minutes": 5.0}))
    assert open_run_folder(run, Settings(), resume=True)
    with pytest.raises(FinevlError, match="different settings"):
        open_run_folder(run, Settings(precision="bf16"), resume=True)
    with pytest.raises(FinevlError, match="different settings"):
        open_run_folder(run, Settings(lr=2e-3), resume=True)
