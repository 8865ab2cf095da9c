"""`finevl stic base`: the SFT base model STIC starts from, in three supervised stages that
each resume on their own: `lm` (the Llama learns world text), `align` (only the projector, on
image-caption pairs) and `sft` (projector + language model on instruction turns)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from finevl.data.conversations import write_conversations
from finevl.data.jsonio import read_json, write_json_atomic
from finevl.data.tokenizer import load_tokenizer, train_word_tokenizer
from finevl.errors import FinevlError
from finevl.models.clip import load_clip
from finevl.models.lvlm import CHAT_WORDS, build_lvlm
from finevl.train.loop import open_run_folder
from finevl.train.stic.config import BaseConfig, SupervisedConfig
from finevl.train.stic.data import alignment_pairs, instruction_turns, lm_texts, world_images
from finevl.train.stic.prompts import all_prompts
from finevl.train.stic.sft import train_supervised

STAGES = ("lm", "align", "sft")
MAX_TOKENS = 256  # image features (65 for a 64 px, patch-8 tower) + prompt + answer


def base_model(out: str | Path) -> Path:
    """Where `finevl stic base --out OUT` leaves the finished base model."""
    return Path(out) / "sft" / "checkpoint" / "model"


def _stage_config(cfg: BaseConfig, stage: str, steps: int, model: str) -> SupervisedConfig:
    train = {"lm": "lm", "align": "projector", "sft": "projector+lm"}[stage]
    if stage == "sft" and cfg.train_vision:
        train += "+vision"
    return SupervisedConfig(
        data=cfg.data,
        out=str(Path(cfg.out) / stage),
        model=model,
        train=train,
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=min(50, steps // 10),
        seed=cfg.seed,
        precision=cfg.precision,
        save_every=max(100, steps // 3),
        log_every=20,
    )


def _stage_turns(cfg: BaseConfig) -> dict[str, list[Any]]:
    """Each stage's training turns, drawn from the world with the run's seed."""
    files = world_images(cfg.data, cfg.split)
    if len(files) < cfg.sft_images:
        raise FinevlError(
            f"{cfg.data}: {len(files)} {cfg.split} images, fewer than --sft-images {cfg.sft_images}"
        )
    ids = sorted(random.Random(cfg.seed).sample(sorted(files), cfg.sft_images))
    return {
        "lm": lm_texts(cfg.data, cfg.split),
        "align": alignment_pairs(cfg.data, ids, files, cfg.seed),
        "sft": instruction_turns(cfg.data, ids, files, cfg.hallucination_share, cfg.seed),
    }


def train_base(
    cfg: BaseConfig, resume: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Build and train the base model; a finished stage is skipped on resume."""
    from accelerate import PartialState

    out, state = Path(cfg.out), PartialState(cpu=not torch.cuda.is_available())
    # under `accelerate launch` the main process claims the folder and writes the shared
    # files (instructions, tokenizer) first; the others then read them
    with state.main_process_first():
        if state.is_main_process:
            open_run_folder(out, cfg, resume, settings="base.json")
        turns = _stage_turns(cfg)
        if state.is_main_process:
            write_conversations(out / "instruct.json", turns["sft"])
            if not (out / "tokenizer" / "tokenizer.json").is_file():
                corpus = [t.answer for t in turns["lm"]] + all_prompts() + [CHAT_WORDS]
                train_word_tokenizer(corpus, out / "tokenizer", MAX_TOKENS)
    start = build_lvlm(
        load_clip(cfg.clip), load_tokenizer(out / "tokenizer"), cfg.lm, cfg.seed, cfg.vision_stage
    )
    summaries: dict[str, Any] = {}
    model, steps = "", {"lm": cfg.lm_steps, "align": cfg.align_steps, "sft": cfg.sft_steps}
    for stage in STAGES:
        stage_cfg = _stage_config(cfg, stage, steps[stage], model)
        done = Path(stage_cfg.out) / "summary.json"
        if resume and done.is_file():
            summaries[stage] = read_json(done)
            if progress:
                progress(steps[stage])
        else:
            # with resume, a stage killed before its first checkpoint starts again in place
            summaries[stage] = train_supervised(
                stage_cfg, turns[stage], start if not model else None, resume, progress
            )
        model = str(Path(stage_cfg.out) / "checkpoint" / "model")
    result = {
        "model": model,
        "instructions": str(out / "instruct.json"),
        "sizes": {
            "lm_texts": len(turns["lm"]),
            "align_pairs": len(turns["align"]),
            "instruction_turns": len(turns["sft"]),
            "images": cfg.sft_images,
        },
        "stages": summaries,
    }
    if state.is_main_process:
        write_json_atomic(out / "summary.json", result)
    return result
