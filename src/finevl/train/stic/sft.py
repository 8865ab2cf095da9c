"""Supervised training of a vision-language model on turns (loss on the answer tokens), the
one loop behind every stage that is not DPO: language modelling, projector alignment,
instruction tuning and description-infused fine-tuning. The vision tower stays frozen
unless `train` names it ("projector+lm+vision")."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import send_to_device

from finevl.data.conversations import Turn
from finevl.data.images import ImageCache
from finevl.errors import FinevlError
from finevl.models.lvlm import Lvlm, load_lvlm
from finevl.train.stic.config import LoraSettings, SupervisedConfig
from finevl.train.trainer import Trainer

LM_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def lora_config(settings: LoraSettings) -> Any:
    """peft LoRA on the language model's linear layers (a regex, since the CLIP vision tower
    has `q_proj`/`k_proj`/`v_proj` too)."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=LM_LINEAR,
        task_type="CAUSAL_LM",
    )


def set_trainable(model: torch.nn.Module, train: str) -> None:
    """Freeze everything, then unfreeze the parts named in `train` ("projector+lm", ...)."""
    for p in model.parameters():
        p.requires_grad_(False)
    parts = {
        "lm": [model.model.language_model, model.lm_head],
        "projector": [model.model.multi_modal_projector],
        "vision": [model.model.vision_tower],
    }
    for part in train.split("+"):
        for module in parts[part]:
            module.requires_grad_(True)


class _LoraLvlm(Lvlm):
    """An Lvlm whose model is a peft LoRA wrapper; it saves a merged copy and trains on."""

    def save(self, out_dir: str | Path) -> Path:
        merged = copy.deepcopy(self.model).merge_and_unload(safe_merge=True)
        return Lvlm(merged, self.processor).save(out_dir)


def _lora_wrap(model: torch.nn.Module, settings: LoraSettings) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(settings))


def _prepare(lvlm: Lvlm, cfg: SupervisedConfig) -> Lvlm:
    if cfg.train != "lora":
        set_trainable(lvlm.model, cfg.train)
        return lvlm
    return _LoraLvlm(_lora_wrap(lvlm.model, cfg), lvlm.processor, lvlm.name)


def supervised_batch(lvlm: Lvlm, turns: list[Turn], images: ImageCache) -> dict[str, torch.Tensor]:
    """Right-padded inputs with answer labels; a turn without a question is raw text."""
    pics = [images(t.image) if t.image else None for t in turns]
    prompts = [lvlm.prompt(t.question, t.image is not None) if t.question else "" for t in turns]
    return lvlm.inputs(pics, prompts, [t.answer for t in turns], padding_side="right")


def train_supervised(
    cfg: SupervisedConfig,
    turns: list[Turn],
    start: Lvlm | None = None,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) one supervised stage from `cfg.model` (or the `start` model);
    images are read under `cfg.data`. Returns the summary (also `run/summary.json`)."""
    if not turns:
        raise FinevlError("no training examples")
    if resume and cfg.train == "lora":
        raise FinevlError("--resume is not supported with --train lora (its checkpoints are merged)")
    trainer = Trainer(cfg, resume)
    torch.manual_seed(cfg.seed)
    if start is None or trainer.start_model != cfg.model:
        start = load_lvlm(trainer.start_model)
    lvlm = _prepare(start, cfg)
    model = lvlm.model.train()
    images = ImageCache(cfg.data)
    trainer.setup(model, saved=lvlm)

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        batch = supervised_batch(lvlm, [turns[i] for i in idx.tolist()], images)
        return lvlm.loss(send_to_device(batch, trainer.device))

    return trainer.fit(trainer.shares(len(turns)), loss_of, progress)
