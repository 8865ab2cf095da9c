"""`finevl stic prefs`: STIC's stage-1 preference data from unlabeled images.

Preferred: the model's answer to the step-by-step description prompt on the clean image.
Dispreferred, per image by a seeded coin: the answer to a hallucination-inducing prompt on the
clean image, or to a plain description prompt on a corrupted image (low resolution, colour
jitter or noise), the corruption really applied (upstream's released code computes it but
feeds the clean image; `apply_corruption=False` reproduces that). Records keep the `<image>`
token in the prompt and reference the image by path, so DPO sees the image.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ValidationError

from finevl.data.conversations import IMAGE_TAG, read_conversations
from finevl.data.files import claim_output
from finevl.data.formats import image_folder
from finevl.data.images import ImageCache
from finevl.data.jsonio import dumps, iter_jsonl, write_text_atomic
from finevl.errors import FinevlError
from finevl.models.lvlm import load_lvlm
from finevl.train.stic.config import PrefsConfig
from finevl.train.stic.data import world_images
from finevl.train.stic.prompts import HALLUCINATION, PLAIN, STEP_BY_STEP

CORRUPTIONS = ("lowres", "jitter", "noise")


def corrupt(image: Image.Image, kind: str, seed: int) -> Image.Image:
    """A corrupted copy: `lowres` (shorter side to 20/336 of itself, at least 4 px: upstream's
    20 px on LLaVA's 336 px input, scaled), `jitter` (brightness 0.5, hue 0.3, upstream's) or
    `noise` (Gaussian, sigma 0.2), back at the original size."""
    from torchvision.transforms import ColorJitter

    if kind == "lowres":
        scale = max(4, round(min(image.size) * 20 / 336)) / min(image.size)
        small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        return small.resize(image.size, Image.BILINEAR)
    if kind == "jitter":
        torch.manual_seed(seed)
        return ColorJitter(brightness=0.5, hue=0.3)(image)
    if kind == "noise":
        pixels = np.asarray(image, dtype=np.float32) / 255
        noisy = pixels + np.random.default_rng(seed).normal(0, 0.2, pixels.shape)
        return Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8))
    raise FinevlError(f"unknown corruption {kind!r} (have {', '.join(CORRUPTIONS)})")


class Preference(BaseModel):
    """One stage-1 record (JSONL). `prompt` keeps `<image>`; `image` is relative to the data folder."""

    id: int
    image: str
    prompt: str
    chosen: str
    rejected: str
    rejected_kind: str  # "hallucination" or "corruption"
    rejected_prompt: str
    corruption: str | None = None
    corruption_applied: bool = False


def _unlabeled(cfg: PrefsConfig) -> list[str]:
    data = Path(cfg.data)
    if (data / "finecap.json").is_file():
        files = list(world_images(data, cfg.split).values())
    else:
        files = [str(p.relative_to(data)) for p, _ in image_folder(data)]
    if cfg.exclude:
        used = {t.image for t in read_conversations(cfg.exclude)}
        files = [f for f in files if f not in used]
    if len(files) < cfg.images:
        raise FinevlError(f"{cfg.data}: {len(files)} usable images, fewer than --images {cfg.images}")
    return sorted(random.Random(cfg.seed).sample(files, cfg.images))


def make_preferences(cfg: PrefsConfig, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write the preference JSONL; returns counts (kinds, and answers DPO will filter)."""
    lvlm = load_lvlm(cfg.model)
    files = _unlabeled(cfg)
    images = ImageCache(cfg.data)
    rng = random.Random(cfg.seed)
    plans = []
    for k in range(len(files)):
        if rng.random() < cfg.corruption_share:
            plans.append(("corruption", rng.choice(PLAIN), rng.choice(CORRUPTIONS), k))
        else:
            plans.append(("hallucination", rng.choice(HALLUCINATION), None, k))
    clean = [images(f) for f in files]
    fed = [
        corrupt(im, how, cfg.seed * 100_003 + k) if how and cfg.apply_corruption else im
        for im, (_, _, how, k) in zip(clean, plans, strict=True)
    ]
    kwargs = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "progress": progress}
    chosen = lvlm.generate(clean, [STEP_BY_STEP] * len(files), seed=cfg.seed, **kwargs)
    rejected = lvlm.generate(fed, [p for _, p, _, _ in plans], seed=cfg.seed + 1, **kwargs)
    records = [
        Preference(
            id=k,
            image=f,
            prompt=f"{IMAGE_TAG}\n{STEP_BY_STEP}",
            chosen=c,
            rejected=r,
            rejected_kind=kind,
            rejected_prompt=f"{IMAGE_TAG}\n{prompt}",
            corruption=how,
            corruption_applied=bool(how) and cfg.apply_corruption,
        )
        for f, c, r, (kind, prompt, how, k) in zip(files, chosen, rejected, plans, strict=True)
    ]
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cfg.out, "".join(dumps(r.model_dump()) + "\n" for r in records))
    kinds = [r.rejected_kind for r in records]
    _, dropped = filter_preferences(records, Path(cfg.data))
    return {
        "out": cfg.out,
        "records": len(records),
        "hallucination": kinds.count("hallucination"),
        "corruption": kinds.count("corruption"),
        "would_be_filtered": dropped,
    }


def filter_preferences(
    records: list[Preference], image_root: Path
) -> tuple[list[Preference], dict[str, int]]:
    """Drop records DPO cannot learn from, counted by reason: a missing image, an empty
    answer, or a preferred answer equal to the dispreferred one."""
    kept, dropped = [], {"missing_image": 0, "empty_answer": 0, "chosen_equals_rejected": 0}
    for r in records:
        if not (image_root / r.image).is_file():
            dropped["missing_image"] += 1
        elif not r.chosen.strip() or not r.rejected.strip():
            dropped["empty_answer"] += 1
        elif r.chosen.strip() == r.rejected.strip():
            dropped["chosen_equals_rejected"] += 1
        else:
            kept.append(r)
    return kept, dropped


def read_preferences(path: str | Path, image_root: str | Path) -> tuple[list[Preference], dict[str, int]]:
    """Preference JSONL, validated and filtered (`filter_preferences`)."""
    records = []
    for line, r in iter_jsonl(path):
        try:
            records.append(Preference.model_validate(r))
        except ValidationError as e:
            raise FinevlError(f"{path}:{line}: not a preference record ({str(e).splitlines()[0]})") from None
    return filter_preferences(records, Path(image_root))


def prefs_command(
    cfg: PrefsConfig, overwrite: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """`finevl stic prefs`: `make_preferences`, its output claimed first."""
    claim_output(cfg.out, overwrite)
    return make_preferences(cfg, progress)
