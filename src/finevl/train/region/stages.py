"""`finevl region train --stage lm|1|2|3`: one supervised stage of a region model.

Every stage is the same loop (loss on the answer tokens); what differs is the data and
which parts train (`config.TRAINABLE`). Stage `lm` builds a new model: a word tokenizer
over the world's training text, the CLIP's ConvNeXt tower and a fresh Llama, which learns
the world's language before it ever sees an image (upstream starts from Vicuna).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from finevl.data.images import ImageCache
from finevl.data.regions import RegionTurn, read_osprey, write_osprey
from finevl.data.tokenizer import load_tokenizer, train_word_tokenizer
from finevl.errors import FinevlError
from finevl.models.lvlm import CHAT_WORDS
from finevl.models.region import (
    RegionLvlm,
    RegionPrompt,
    build_region_model,
    load_region_model,
)
from finevl.train.region.config import TRAINABLE, RegionTrainConfig
from finevl.train.region.data import world_records
from finevl.train.region.prompts import all_region_prompts
from finevl.train.stic.data import split_texts
from finevl.train.stic.prompts import BRIEF
from finevl.train.trainer import Trainer


def stage_turns(cfg: RegionTrainConfig, run: Path) -> tuple[list[RegionTurn], Path]:
    """The stage's turns and their image folder. A world is first written as an Osprey file
    in the run folder (`data.json`), so a world and a real dataset take the same path."""
    data = Path(cfg.data)
    if data.is_file() and cfg.stage == "lm":  # the language model learns the answers' text
        return [RegionTurn("", (0, 0), [], "", t.answer) for t in read_osprey(data)], data.parent
    if data.is_file():
        if not cfg.images_dir:
            raise FinevlError("an Osprey JSON file needs --images-dir (its image folder)")
        return read_osprey(data), Path(cfg.images_dir)
    if cfg.stage == "lm":
        return [RegionTurn("", (0, 0), [], "", t) for t in split_texts(data, cfg.split)], data
    path = run / "data.json"
    if not path.is_file():
        write_osprey(path, world_records(data, cfg.split, cfg.images, cfg.stage, cfg.seed))
    return read_osprey(path), data / "images"


def new_model(cfg: RegionTrainConfig, turns: list[RegionTurn], run: Path) -> RegionLvlm:
    """A fresh region model over a word tokenizer of the stage's text and every prompt."""
    folder = run / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        corpus = [t.answer for t in turns] + all_region_prompts() + [BRIEF, CHAT_WORDS]
        train_word_tokenizer(corpus, folder, 1024)
    return build_region_model(cfg.clip, load_tokenizer(folder), lm=cfg.lm, seed=cfg.seed)


def _configure(model: RegionLvlm, cfg: RegionTrainConfig) -> RegionLvlm:
    """Apply the stage's region-input and spatial-token choices to a start model."""
    model.config = replace(
        model.config,
        region_input=cfg.region_input or model.config.region_input,
        spatial_token=model.config.spatial_token and cfg.spatial_token,
    )
    model.extractor.config = model.config
    model.set_trainable(TRAINABLE[cfg.stage])
    return model


def region_batch(model: RegionLvlm, turns: list[RegionTurn], images: ImageCache | None) -> dict[str, Any]:
    """Right-padded inputs with answer labels (text-only turns when `images` is None)."""
    examples = [
        RegionPrompt(images(t.image) if images else None, t.masks() if images else [], t.question)
        for t in turns
    ]
    return model.batch(examples, [t.answer for t in turns], padding_side="right")


def train_region_stage(
    cfg: RegionTrainConfig, resume: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Train (or resume) one stage; returns the summary (also `run/summary.json`)."""
    trainer = Trainer(cfg, resume)
    with trainer.accelerator.main_process_first():  # it writes the stage's data and tokenizer
        turns, image_root = stage_turns(cfg, trainer.folder)
        if not turns:
            raise FinevlError(f"{cfg.data}: no training turns")
        torch.manual_seed(cfg.seed)
        start = str(trainer.start_model)
        model = load_region_model(start) if start else new_model(cfg, turns, trainer.folder)
    model = _configure(model, cfg).train()
    images = ImageCache(image_root) if cfg.stage != "lm" else None
    trainer.setup(model)

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        return model.loss(region_batch(model, [turns[i] for i in idx.tolist()], images))

    return trainer.fit(trainer.shares(len(turns)), loss_of, progress, extra={"turns": len(turns)})
