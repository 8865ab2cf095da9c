"""`finevl stic dift`: STIC stage 2, description-infused fine-tuning. In a small sample of the
instruction data, the model's own step-by-step description of the image goes after the
image ("<image>\\nImage description:\\n{description}\\n\\n{question}", upstream's shape), and
the model is fine-tuned on those turns (LoRA on the language model by default, merged)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accelerate import PartialState

from finevl.data.conversations import Turn, read_conversations, write_conversations
from finevl.data.images import ImageCache
from finevl.errors import FinevlError
from finevl.models.lvlm import load_lvlm
from finevl.train.stic.config import DiftConfig
from finevl.train.stic.prompts import STEP_BY_STEP, infuse
from finevl.train.stic.sft import train_supervised


def infused_turns(cfg: DiftConfig, lvlm: Any) -> list[Turn]:
    """`cfg.examples` instruction turns with images, each with the model's own description."""
    # the base's on-request hallucinations would teach answers that contradict the description
    turns = [t for t in read_conversations(cfg.instructions) if t.image and t.kind != "hallucination"]
    if len(turns) < cfg.examples:
        raise FinevlError(f"{cfg.instructions}: {len(turns)} turns with an image, fewer than --examples")
    picked = random.Random(cfg.seed).sample(turns, cfg.examples)
    images = ImageCache(cfg.data)
    files = sorted({t.image for t in picked})
    described = lvlm.generate([images(f) for f in files], [STEP_BY_STEP] * len(files), cfg.max_new_tokens)
    description = dict(zip(files, described, strict=True))
    return [t.model_copy(update={"question": infuse(t.question, description[t.image])}) for t in picked]


def train_dift(
    cfg: DiftConfig, resume: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Stage 2: write the infused turns (`out/dift.json`, LLaVA format) and fine-tune on them."""
    lvlm = load_lvlm(cfg.model)
    turns = infused_turns(cfg, lvlm)
    summary = train_supervised(cfg, turns, start=lvlm, resume=resume, progress=progress)
    if PartialState().is_main_process:  # under `accelerate launch`, one writer
        write_conversations(Path(cfg.out) / "dift.json", turns)
    return {**summary, "model": str(Path(cfg.out) / "checkpoint" / "model"), "examples": len(turns)}
