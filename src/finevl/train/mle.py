"""MLE (teacher-forced cross-entropy) training of the captioner on the references only,
as the paper trains on COCO's: for FineShapes, the five coarse references per image.

The CLIP image tower is frozen, so its token features are computed once and the steps train
the decoder alone. Each step takes `batch_size` images with all their references; the
torch seed is set from the step, so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from finevl.data.imagetext import ImageTextSet, load_image_text
from finevl.data.tokenizer import corpus_texts, train_word_tokenizer
from finevl.errors import FinevlError
from finevl.models.captioner import CaptionerBundle, load_captioner, new_captioner
from finevl.models.clip import Clip, load_clip
from finevl.train.config import CaptionTrainConfig
from finevl.train.trainer import Trainer


def captioning_data(data: str | Path, clip: Clip, split: str = "train") -> tuple[ImageTextSet, torch.Tensor]:
    """A world split in memory and its frozen CLIP image-token features (N, T, W)."""
    images = load_image_text(data, clip.image_size, split=split)
    if any(not refs for refs in images.refs):
        raise FinevlError(f"{data}: every image needs reference captions (captions.json)")
    return images, clip.eval().embed_pixels(images.images, tokens=True)


def _start(cfg: CaptionTrainConfig, run: Trainer, vision_dim: int) -> CaptionerBundle:
    if run.start_model:
        bundle = load_captioner(run.start_model)
        if bundle.model.config.vision_dim != vision_dim:
            raise FinevlError(f"{run.start_model}: reads features of width {bundle.model.config.vision_dim}")
        return bundle
    tokenizer = train_word_tokenizer(corpus_texts(cfg.data), run.folder / "tokenizer")
    sizes = {"d_model": cfg.d_model, "layers": cfg.layers, "heads": cfg.heads}
    clip = Path(cfg.clip).resolve() if Path(cfg.clip).exists() else cfg.clip  # usable from anywhere
    return new_captioner(tokenizer, vision_dim, str(clip), **sizes)


def mle_batch(
    bundle: CaptionerBundle, refs: list[list[str]], idx: torch.Tensor, max_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows of images, input ids, labels): one row per (image, reference)."""
    rows = [i for i in idx.tolist() for _ in refs[i]]
    ids, labels = bundle.encode([r for i in idx.tolist() for r in refs[i]], max_length)
    return torch.tensor(rows), ids, labels


def train_captioner(
    cfg: CaptionTrainConfig, resume: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Train (or resume) a captioner by MLE; returns the summary (also `run/summary.json`)."""
    trainer = Trainer(cfg, resume)
    torch.manual_seed(cfg.seed)
    clip_name = cfg.clip or load_captioner(cfg.model).model.config.clip_model
    data, feats = captioning_data(cfg.data, load_clip(clip_name), cfg.split)
    bundle = _start(cfg, trainer, feats.shape[-1])
    model = bundle.model.train()
    trainer.setup(model, saved=bundle)

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        rows, ids, labels = mle_batch(bundle, data.refs, idx, cfg.max_length)
        feats_rows, ids, labels = (t.to(trainer.device) for t in (feats[rows], ids, labels))
        return model(feats_rows, ids, labels=labels).loss

    return trainer.fit(trainer.shares(len(data)), loss_of, progress)
