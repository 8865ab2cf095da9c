"""Contrastive CLIP training on accelerate: one loop for 1 CPU process, N CPU processes
(gloo) or GPUs.

Symmetric InfoNCE is open_clip's `ClipLoss`, with features gathered across processes and
gradients kept for the local shard (`gather_with_grad=True`, so N processes on N x B samples
step exactly as one process on the whole batch). The temperature is learnable (init 1/0.07,
clamped at 100). AdamW with linear warm-up and cosine decay; gradient accumulation; captions
sampled at varying detail each step; TensorBoard logs; atomic checkpoints every
`save_every` steps and at the end; `resume` continues a killed run bit-for-bit.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from finevl.data.files import replace_dir, temp_sibling
from finevl.data.imagetext import CaptionSampler, ImageTextSet, load_image_text
from finevl.data.jsonio import read_json, write_json_atomic
from finevl.errors import FinevlError
from finevl.models.clip import Clip, load_clip
from finevl.train.config import ClipTrainConfig

logger = logging.getLogger(__name__)


def cosine_with_warmup(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only: no decay on gains, biases, embeddings' scale or temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def batch_indices(n: int, batch: int, step: int, seed: int) -> torch.Tensor:
    """The global batch of a step: a seeded permutation per epoch, so any step (and any
    resumed run) draws exactly the same samples."""
    per_epoch = max(1, n // batch)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[k * batch : (k + 1) * batch]


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
    clip: Clip, data: ImageTextSet, idx: torch.Tensor, rng: random.Random, sampler: CaptionSampler
) -> tuple[torch.Tensor, Any]:
    """Model-ready pixels and tokenized captions (one sampled caption per image)."""
    texts = [sampler(rng, data.refs[i], data.fine[i]) for i in idx.tolist()]
    return clip.normalize_pixels(data.images[idx]), clip.tokenize(texts)


def contrastive_step(
    model: torch.nn.Module, loss_fn: torch.nn.Module, pixels: torch.Tensor, texts: Any
) -> torch.Tensor:
    """Forward and loss of one micro-batch (the caller backpropagates)."""
    image_features, text_features, scale = model(pixels, texts)
    return loss_fn(image_features, text_features, scale)


def save_checkpoint(run: Path, clip: Clip, opt: Any, sched: Any, step: int, summary: dict[str, Any]) -> None:
    """Write `run/checkpoint/` atomically: the model in its family's layout, optimizer and
    scheduler state (`state.pt`, read back with weights_only=True) and progress."""
    tmp = temp_sibling(run / "checkpoint")
    clip.save(tmp / "model")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp / "state.pt")
    write_json_atomic(tmp / "progress.json", {"step": step, **summary})
    replace_dir(tmp, run / "checkpoint")


def _resume(run: Path, opt: Any, sched: Any) -> int:
    ckpt = run / "checkpoint"
    if not (ckpt / "progress.json").is_file():
        return 0
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    return int(read_json(ckpt / "progress.json")["step"])


def _prepare_run(cfg: ClipTrainConfig, resume: bool) -> tuple[Path, str | Path]:
    """The run folder, and the model to start from (the checkpoint when resuming)."""
    run = Path(cfg.out)
    ckpt_model = run / "checkpoint" / "model"
    if resume and ckpt_model.is_dir():
        saved = read_json(run / "config.json")
        if {k: v for k, v in saved.items() if k not in ("max_minutes",)} != {
            k: v for k, v in asdict(cfg).items() if k not in ("max_minutes",)
        }:
            raise FinevlError(f"{run}: --resume with different settings than {run / 'config.json'}")
        return run, ckpt_model
    if run.exists() and any(run.iterdir()) and not resume:
        raise FinevlError(f"{run}: run folder is not empty; pass --resume to continue it")
    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run / "config.json", asdict(cfg))
    return run, cfg.model


def _setup(
    cfg: ClipTrainConfig, resume: bool, accelerator: Any
) -> tuple[Path, Clip, ImageTextSet, Any, Any, int]:
    """Run folder, model, data, optimizer, scheduler and the step to start from."""
    # One process checks and sets up the run folder; the others wait, then start alike.
    if accelerator.is_main_process:
        run, start_model = _prepare_run(cfg, resume)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        run, start_model = _prepare_run(cfg, resume=True) if resume else (Path(cfg.out), cfg.model)
    torch.manual_seed(cfg.seed)
    clip = load_clip(start_model).train()
    data = load_image_text(cfg.data, clip.image_size, split=cfg.split)
    if cfg.batch_size % (accelerator.num_processes * cfg.grad_accum):
        raise FinevlError(f"--batch-size {cfg.batch_size} must divide by processes x --grad-accum")
    opt = torch.optim.AdamW(param_groups(clip, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(cfg.warmup_steps, cfg.steps))
    start = _resume(run, opt, sched) if resume else 0
    return run, clip, data, opt, sched, start


def _log(accelerator: Any, run: Path, step: int, summary: dict[str, Any]) -> None:
    accelerator.log(summary, step=step)
    logger.info("step %d loss %.4f", step, summary["loss"])
    if accelerator.is_main_process:  # the curve as JSONL too, for reports without TensorBoard
        with (run / "log.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **summary}) + "\n")


def _out_of_time(accelerator: Any, cfg: ClipTrainConfig, began: float) -> bool:
    """Whether the time budget is spent, agreed by every process (else one would wait forever)."""
    if not cfg.max_minutes:
        return False
    late = torch.tensor(float(time.time() - began > 60 * cfg.max_minutes))
    return bool(accelerator.reduce(late, reduction="sum").item() > 0)


def train_clip(
    cfg: ClipTrainConfig, resume: bool = False, progress: Callable[[int], None] | None = None
) -> dict:
    """Train (or resume) a CLIP run; returns the final summary (also `run/summary.json`)."""
    from accelerate import Accelerator
    from open_clip import ClipLoss

    accelerator = Accelerator(cpu=not torch.cuda.is_available(), log_with="tensorboard", project_dir=cfg.out)
    run, clip, data, opt, sched, start = _setup(cfg, resume, accelerator)
    world, rank = accelerator.num_processes, accelerator.process_index
    # The scheduler stays ours: accelerate's wrapper would step it once per process.
    model, opt = accelerator.prepare(clip, opt)
    loss_fn = ClipLoss(local_loss=False, gather_with_grad=True, rank=rank, world_size=world)
    accelerator.init_trackers("tensorboard")
    sampler, began, summary, step = CaptionSampler(), time.time(), {}, start - 1
    micro, share = cfg.batch_size // cfg.grad_accum, cfg.batch_size // cfg.grad_accum // world
    groups = group_ids(data, cfg.group_by) if cfg.group_by else None
    for step in range(start, cfg.steps):
        if groups is None:
            idx = batch_indices(len(data), cfg.batch_size, step, cfg.seed)
        else:
            idx = grouped_batch_indices(groups, cfg.batch_size, step, cfg.seed)
        rng = random.Random(cfg.seed * 1_000_003 + step)
        pixels, texts = make_batch(clip, data, idx, rng, sampler)  # the global batch, same on every rank
        total = 0.0
        for m in range(cfg.grad_accum):  # each process takes its share of each micro-batch
            part = slice(m * micro + rank * share, m * micro + (rank + 1) * share)
            loss = contrastive_step(model, loss_fn, pixels[part], texts[part]) / cfg.grad_accum
            accelerator.backward(loss)
            total += loss.item()
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or float("inf"))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        clip.clamp_logit_scale()
        summary = {
            "loss": total,
            "grad_norm": float(grad_norm),
            "lr": sched.get_last_lr()[0],
            "logit_scale": clip.logit_scale.exp().item(),
            "seconds": time.time() - began,
            "truncated": texts.truncated,
        }
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            _log(accelerator, run, step, summary)
        if progress:
            progress(1)
        stop = _out_of_time(accelerator, cfg, began)
        last = (step + 1) % cfg.save_every == 0 or step == cfg.steps - 1 or stop
        if accelerator.is_main_process and last:
            save_checkpoint(run, clip, opt, sched, step + 1, summary)
        if stop:
            break
    accelerator.end_training()
    result = {"run": str(run), "steps": step + 1, "processes": world, **summary}
    if accelerator.is_main_process:
        write_json_atomic(run / "summary.json", result)
    return result
