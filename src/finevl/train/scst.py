"""Self-critical sequence training (Rennie et al.) of the captioner, seed 000's RL stage.

Each step: K captions sampled per image (multinomial, temperature 1), each scored by the
reward (`finevl.train.rewards`); the baseline is the greedy caption's reward (upstream) or
the mean of the image's other samples; the loss is -(reward - baseline) * log p(sample),
averaged over generated tokens. Dropout is off: samples and their log-probabilities come
from the same policy. The time spent on generation, reward and update is logged, so the
reward's share of a step is measured, not guessed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from finevl.errors import FinevlError
from finevl.models.captioner import CaptionerBundle, caption_mask, load_captioner
from finevl.models.clip import Clip, load_clip
from finevl.models.grammar import load_grammar
from finevl.train.config import ScstConfig
from finevl.train.mle import captioning_data
from finevl.train.rewards import CaptionReward, RewardWeights
from finevl.train.trainer import Trainer


def advantages(rewards: torch.Tensor, baseline: torch.Tensor | None) -> torch.Tensor:
    """(B, K) sample rewards minus the baseline: the greedy reward (B, 1) when given, else
    the mean of the image's other K - 1 samples.

    >>> advantages(torch.tensor([[1.0, 2.0, 3.0]]), None)
    tensor([[-1.5000,  0.0000,  1.5000]])
    """
    if baseline is not None:
        return rewards - baseline
    k = rewards.shape[1]
    return rewards - (rewards.sum(1, keepdim=True) - rewards) / (k - 1)


def policy_loss(logprobs: torch.Tensor, mask: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """-(advantage * log p) over generated tokens, averaged over tokens (upstream's
    RewardCriterion)."""
    return -(advantage[:, None] * logprobs * mask).sum() / mask.sum().clamp(min=1)


def scst_step(
    bundle: CaptionerBundle,
    reward: Callable[[list[int], list[str]], dict[str, torch.Tensor]],
    feats: torch.Tensor,
    idx: list[int],
    cfg: ScstConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sample, score, and return the loss (not yet backpropagated) with the step's stats."""
    model, k = bundle.model, cfg.samples
    t0 = time.perf_counter()
    samples = model.generate_ids(feats, "sample", max_new_tokens=cfg.max_new_tokens, num_return_sequences=k)
    greedy = (
        model.generate_ids(feats, max_new_tokens=cfg.max_new_tokens) if cfg.baseline == "greedy" else None
    )
    t1 = time.perf_counter()
    captions = bundle.decode(samples)
    scored = reward([i for i in idx for _ in range(k)], captions)
    base = reward(idx, bundle.decode(greedy))["reward"][:, None] if greedy is not None else None
    t2 = time.perf_counter()
    adv = advantages(scored["reward"].view(len(idx), k), base).flatten()
    mask = caption_mask(samples, model.config.eos_token_id)
    loss = policy_loss(model.token_logprobs(feats.repeat_interleave(k, 0), samples), mask, adv)
    stats = {f"sample/{name}": v.mean().item() for name, v in scored.items()}
    if base is not None:
        stats["greedy/reward"] = base.mean().item()
    ended = (samples[:, 1:] == model.config.eos_token_id).any(1).float()
    stats["sample/length"] = (mask.sum(1) - ended).mean().item()  # tokens, EOS not counted
    stats["seconds/generate"], stats["seconds/reward"] = t1 - t0, t2 - t1
    return loss, stats


def _reward(cfg: ScstConfig, captioner_clip: Clip, data: Any) -> CaptionReward:
    clip = load_clip(cfg.clip) if cfg.clip else captioner_clip
    if clip.image_size != captioner_clip.image_size:
        raise FinevlError(
            f"--clip {cfg.clip} reads {clip.image_size} px images, "
            f"the captioner's CLIP {captioner_clip.image_size} px"
        )
    weights = RewardWeights(cfg.clip_s_weight, cfg.cider_weight, cfg.refclip_weight, cfg.grammar_weight)
    grammar = load_grammar(cfg.grammar) if cfg.grammar else None
    return CaptionReward(clip, clip.embed_pixels(data.images), data.refs, weights, grammar)


def train_scst(cfg: ScstConfig, resume: bool = False, progress: Callable[[int], None] | None = None) -> dict:
    """Fine-tune a captioner with SCST; returns the summary (also `run/summary.json`)."""
    trainer = Trainer(cfg, resume)
    torch.manual_seed(cfg.seed)
    bundle = load_captioner(trainer.start_model)
    captioner_clip = load_clip(bundle.model.config.clip_model)
    data, feats = captioning_data(cfg.data, captioner_clip, cfg.split)
    reward = _reward(cfg, captioner_clip, data)
    model = bundle.model.eval()  # dropout off; gradients still flow
    trainer.setup(model, saved=bundle, constant_lr=True)

    def loss_of(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        rows = idx.tolist()
        return scst_step(bundle, reward, feats[rows].to(trainer.device), rows, cfg)

    def timing(summary: dict[str, Any]) -> None:
        summary["reward_share"] = summary["seconds/reward"] / summary["seconds/step"]
        summary["samples_per_s"] = min(cfg.batch_size, len(data)) * cfg.samples / summary["seconds/step"]

    return trainer.fit(trainer.shares(len(data)), loss_of, progress, after_update=timing)
