"""Training seed 000's grammar head: CLIP's text tower, its projection and the head learn
together from the contrastive loss (against frozen image embeddings, so retrieval does not
collapse) plus the cross-entropy of grammatical vs corrupted captions, 1:1. Each step takes
one reference per image and one negative of it (`finevl.data.negatives`)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from finevl.data.imagetext import load_image_text
from finevl.data.negatives import KINDS, caption_vocabulary, make_negative
from finevl.models.clip import load_clip
from finevl.models.grammar import GrammarModel, load_grammar
from finevl.train.config import GrammarTrainConfig
from finevl.train.loop import batch_indices
from finevl.train.trainer import Trainer


def grammar_step(
    model: GrammarModel, image_emb: torch.Tensor, positives: list[str], negatives: list[str]
) -> dict[str, torch.Tensor]:
    """Contrastive loss of the positives against their images + grammar cross-entropy."""
    logits, emb = model.logits(positives + negatives)
    n = len(positives)
    scale = model.clip.logit_scale.exp()
    sims = scale * image_emb @ emb[:n].T
    target = torch.arange(n, device=sims.device)
    contrastive = (F.cross_entropy(sims, target) + F.cross_entropy(sims.T, target)) / 2
    labels = torch.cat([torch.ones(n), torch.zeros(len(negatives))]).long().to(logits.device)
    grammar = F.cross_entropy(logits, labels)
    return {"loss": contrastive + grammar, "contrastive": contrastive, "grammar": grammar}


def grammar_accuracy(
    model: GrammarModel, captions: list[str], vocab: list[str], seed: int = 0
) -> dict[str, float]:
    """Held-out accuracy: on the captions themselves and on one negative of each kind."""
    rng = random.Random(seed)
    p = model.p_grammatical(captions)
    out = {"positives": (p > 0.5).float().mean().item()}
    for kind in KINDS:
        negatives = [make_negative(c, rng, vocab, kind)[0] for c in captions]
        out[kind] = (model.p_grammatical(negatives) <= 0.5).float().mean().item()
    out["all_negatives"] = sum(out[k] for k in KINDS) / len(KINDS)
    return out


def train_grammar(
    cfg: GrammarTrainConfig, resume: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Fine-tune a CLIP with the grammar head; the summary holds the held-out accuracy."""
    trainer = Trainer(cfg, resume)
    torch.manual_seed(cfg.seed)
    start = trainer.start_model
    model = load_grammar(start) if start else GrammarModel(load_clip(cfg.clip))
    data = load_image_text(cfg.data, model.clip.image_size, split=cfg.split)
    image_emb = model.clip.eval().embed_pixels(data.images)
    vocab = caption_vocabulary([r for refs in data.refs for r in refs])
    model.clip.lock_image_tower()
    model.clip.logit_scale.requires_grad_(False)
    model.train()
    trainer.setup(model)

    def batches(step: int) -> Iterator[tuple[list[int], list[str], list[str]]]:
        """The step's captions and negatives drawn for the global batch, then shared out."""
        rng = random.Random(cfg.seed * 1_000_003 + step)
        idx = batch_indices(len(data), cfg.batch_size, step, cfg.seed).tolist()
        positives = [rng.choice(data.refs[i]) for i in idx]
        negatives = [make_negative(c, rng, vocab)[0] for c in positives]
        for part in trainer.micro_slices(len(idx)):
            yield idx[part], positives[part], negatives[part]

    def loss_of(batch: tuple[list[int], list[str], list[str]]) -> tuple[torch.Tensor, dict[str, float]]:
        idx, positives, negatives = batch
        losses = grammar_step(model, image_emb[idx].to(trainer.device), positives, negatives)
        return losses["loss"], {name: losses[name].item() for name in ("contrastive", "grammar")}

    summary = trainer.fit(batches, loss_of, progress)
    held_out = load_image_text(cfg.data, model.clip.image_size, split=cfg.eval_split, limit=500)
    captions = [r[0] for r in held_out.refs if r]
    summary["held_out_accuracy"] = grammar_accuracy(model.eval(), captions, vocab, cfg.seed)
    return trainer.save_summary(summary)
