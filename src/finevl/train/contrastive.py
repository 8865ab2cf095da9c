"""Contrastive CLIP training on `Trainer`: 1 CPU process, N CPU processes (gloo) or GPUs.

Symmetric InfoNCE is open_clip's `ClipLoss`, with features gathered across processes and
gradients kept for the local shard (`gather_with_grad=True`, so N processes on N x B samples
step exactly as one process on the whole batch). The temperature is learnable (init 1/0.07,
clamped at 100). AdamW with linear warm-up and cosine decay; gradient accumulation; captions
sampled at varying detail each step; TensorBoard logs; atomic checkpoints every
`save_every` steps and at the end; `resume` continues a killed run bit-for-bit.
`--hard-negatives K` adds K compositional negatives per caption to the image-to-text side
(`negclip.NegClipLoss`), `--lock-image` freezes the image tower (LiT).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import torch

from finevl.data.hard_negatives import Check, HardNegatives, NegativeVocab, negative_vocab
from finevl.data.imagetext import CaptionSampler, ImageTextSet, load_image_text
from finevl.errors import FinevlError
from finevl.language.grammar import caption_is_false
from finevl.models.clip import Clip, load_clip
from finevl.train.config import ClipTrainConfig
from finevl.train.loop import batch_indices
from finevl.train.negclip import NegClipLoss
from finevl.train.trainer import Trainer

logger = logging.getLogger(__name__)


def grouped_batch_indices(groups: torch.Tensor, batch: int, step: int, seed: int) -> torch.Tensor:
    """A global batch drawn from as few groups as possible (e.g. one background), so what a
    group shares cannot tell its images apart: hard negatives. Groups come in a random
    order, each shuffled, until the batch is full. Seeded by the step, like `batch_indices`."""
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    ids = groups.unique()
    picked: list[torch.Tensor] = []
    for gid in ids[torch.randperm(len(ids), generator=g)]:
        members = torch.nonzero(groups == gid).flatten()
        picked.append(members[torch.randperm(len(members), generator=g)])
        if sum(len(p) for p in picked) >= batch:
            break
    return torch.cat(picked)[:batch]


def group_ids(data: ImageTextSet, key: str) -> torch.Tensor:
    """Group index of every image by a fine-caption criterion's facts (e.g. `background`)."""
    if any(f is None for f in data.fine):
        raise FinevlError(f"--group-by {key} needs fine captions (finecap.json) for every image")
    labels = [" ".join(f.facts.get(key, [])) for f in data.fine]  # type: ignore[union-attr]
    index = {lab: k for k, lab in enumerate(sorted(set(labels)))}
    return torch.tensor([index[lab] for lab in labels])


def make_batch(
    clip: Clip,
    data: ImageTextSet,
    idx: torch.Tensor,
    rng: random.Random,
    sampler: CaptionSampler,
    negatives: HardNegatives | None = None,
) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
    """Model-ready pixels, tokenized captions (one sampled caption per image) and, with
    `negatives`, K negatives per caption after them (rows B + i*K ...) with their mask:
    a caption with fewer editable words is padded with itself, masked out."""
    texts = [sampler(rng, data.refs[i], data.fine[i]) for i in idx.tolist()]
    pixels = clip.normalize_pixels(data.images[idx])
    if negatives is None:
        return pixels, clip.tokenize(texts), None
    extra, keep = [], []
    for i, text in zip(idx.tolist(), texts, strict=True):
        fine = data.fine[i]
        found = negatives(text, rng, fine.scene if fine is not None else None)
        extra += found + [text] * (negatives.k - len(found))
        keep += [True] * len(found) + [False] * (negatives.k - len(found))
    return pixels, clip.tokenize(texts + extra), torch.tensor(keep)


def text_rows(images: slice, batch: int, k: int) -> torch.Tensor:
    """Rows of `make_batch`'s texts for a slice of its images: their captions, then their
    negatives."""
    own = torch.arange(images.start, images.stop)
    return torch.cat([own, batch + torch.arange(images.start * k, images.stop * k)])


def contrastive_step(
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    pixels: torch.Tensor,
    texts: Any,
    negative_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forward and loss of one micro-batch (the caller backpropagates); text rows past the
    images' count are negatives."""
    image_features, text_features, scale = model(pixels, texts)
    if negative_mask is None:
        return loss_fn(image_features, text_features, scale)
    n = len(pixels)
    return loss_fn(image_features, text_features[:n], scale, text_features[n:], negative_mask)


def _hard_negatives(
    cfg: ClipTrainConfig, data: ImageTextSet, check: Check | None, default_vocab: NegativeVocab | None
) -> HardNegatives | None:
    if not cfg.hard_negatives:
        return None
    if cfg.negative_vocab:
        return HardNegatives(NegativeVocab.from_file(cfg.negative_vocab), cfg.hard_negatives, check)
    if not any(f is not None and f.scene for f in data.fine):
        raise FinevlError(
            f"--hard-negatives: {cfg.data} has no facts to check negatives against;"
            " give --negative-vocab FILE"
        )
    return HardNegatives(default_vocab or negative_vocab(), cfg.hard_negatives, check)


def train_clip(
    cfg: ClipTrainConfig,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    check: Check | None = caption_is_false,
    default_vocab: NegativeVocab | None = None,
) -> dict:
    """Train (or resume) a CLIP run; returns the final summary (also `run/summary.json`).

    With `cfg.hard_negatives`, negatives are word swaps from `cfg.negative_vocab` (else
    `default_vocab`, FineShapes' words by default), kept only where `check(negative, scene)`
    says false (the world's parser by default) when the data has scenes; data with neither
    scenes nor a vocabulary file is refused."""
    trainer = Trainer(cfg, resume)
    torch.manual_seed(cfg.seed)
    clip = load_clip(trainer.start_model).train()
    if cfg.lock_image:
        clip.lock_image_tower(keep_head=cfg.unlock_image_head)  # LiT
    data = load_image_text(cfg.data, clip.image_size, split=cfg.split)
    trainer.setup(clip, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = NegClipLoss(
        rank=trainer.accelerator.process_index, world_size=trainer.accelerator.num_processes
    )
    negatives = _hard_negatives(cfg, data, check, default_vocab)
    k = negatives.k if negatives else 0
    sampler = CaptionSampler()
    groups = group_ids(data, cfg.group_by) if cfg.group_by else None

    def batches(step: int) -> Iterator[tuple[torch.Tensor, Any, torch.Tensor | None]]:
        """The step's global batch (the same on every process), shared out."""
        if groups is None:
            idx = batch_indices(len(data), cfg.batch_size, step, cfg.seed)
        else:
            idx = grouped_batch_indices(groups, cfg.batch_size, step, cfg.seed)
        rng = random.Random(cfg.seed * 1_000_003 + step)
        pixels, texts, keep = make_batch(clip, data, idx, rng, sampler, negatives)
        for part in trainer.micro_slices(len(idx)):
            mine = None if keep is None else keep[part.start * k : part.stop * k].to(trainer.device)
            yield pixels[part], texts[text_rows(part, len(idx), k)], mine

    def loss_of(batch: tuple[torch.Tensor, Any, torch.Tensor | None]) -> tuple[torch.Tensor, dict[str, Any]]:
        pixels, texts, mine = batch
        return contrastive_step(clip, loss_fn, pixels, texts, mine), {"truncated": texts.truncated}

    def clamp(summary: dict[str, Any]) -> None:
        clip.clamp_logit_scale()
        summary["logit_scale"] = clip.logit_scale.exp().item()

    return trainer.fit(batches, loss_of, progress, after_update=clamp)
