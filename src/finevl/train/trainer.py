"""The one training loop of every finevl trainer, on accelerate.

A trainer builds its model and says how to compute a micro-batch's loss; `Trainer` does the
rest, the same way for all of them: the run folder (settings checked on resume), device
placement, `precision` (autocast: auto, fp32, bf16, fp16 on a GPU), N processes (DDP; FSDP or
DeepSpeed through a user's `accelerate config`), gradient accumulation and clipping, AdamW
with warm-up, the time budget (agreed by every process), TensorBoard + `log.jsonl`, atomic
checkpoints and a bit-for-bit resume.

    trainer = Trainer(cfg, resume)                       # run folder, accelerator
    model = load(trainer.start_model)                    # the checkpoint when resuming
    trainer.setup(model)                                 # optimizer, schedule, resumed state
    return trainer.fit(trainer.shares(len(data)), loss_of)

Each process takes an equal share of every micro-batch of the step's global batch, and the
gradients are averaged (DDP), so with a per-example mean loss N processes step exactly as
one process on the whole batch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from finevl.data.jsonio import write_json_atomic
from finevl.errors import FinevlError
from finevl.train.heap import keep_freed_memory
from finevl.train.loop import (
    batch_indices,
    constant_with_warmup,
    cosine_with_warmup,
    param_groups,
    prepare_run,
    resume_state,
    save_checkpoint,
)

logger = logging.getLogger(__name__)

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # --precision -> accelerate's name

LossOf = Callable[[Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


class _LossForward(torch.nn.Module):
    """The model with the step's loss as its forward: DDP's gradient hooks and accelerate's
    autocast then see every loss, whichever of the model's methods it calls."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, loss_of: LossOf, batch: Any) -> Any:
        return loss_of(batch)


def _mixed_precision(precision: str) -> str:
    """accelerate's name for a resolved `--precision` (`auto` already followed
    `accelerate launch --mixed_precision`, train/config.resolve_precision); an explicit fp32
    stays fp32."""
    return MIXED_PRECISION[precision]


def _forget_other_precision(mixed_precision: str) -> None:
    """accelerate keeps one precision per process; a pipeline or test that trains twice in
    one process with another precision starts its state afresh (the process group stays)."""
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state()


class Trainer:
    """One run of any finevl trainer. `cfg` is a `RunConfig` (with `model`, the start model)."""

    def __init__(self, cfg: Any, resume: bool = False):
        from accelerate import Accelerator

        if cfg.precision == "fp16" and not torch.cuda.is_available():
            raise FinevlError("--precision fp16 needs a GPU; on the CPU use bf16 or fp32")
        self.cfg, self.resume = cfg, resume
        keep_freed_memory()  # steps re-use their memory without page faults (train/heap.py)
        mixed_precision = _mixed_precision(cfg.precision)
        _forget_other_precision(mixed_precision)
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(),
            mixed_precision=mixed_precision,
            log_with="tensorboard",
            project_dir=cfg.out,
        )
        if cfg.batch_size % (self.accelerator.num_processes * cfg.grad_accum):
            raise FinevlError(f"--batch-size {cfg.batch_size} must divide by processes x --grad-accum")
        # One process checks and claims the run folder; the others wait, then start alike.
        if self.accelerator.is_main_process:
            self.folder, self.start_model = prepare_run(cfg, resume)
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            self.folder, self.start_model = prepare_run(cfg, True) if resume else (Path(cfg.out), cfg.model)
        self.accelerator.init_trackers("tensorboard")

    @property
    def device(self) -> torch.device:
        """Where this process's model lives: a trainer's `loss_of` moves its inputs here."""
        return self.accelerator.device

    def setup(
        self, model: torch.nn.Module, saved: Any = None, constant_lr: bool = False, **adamw: Any
    ) -> None:
        """AdamW over `model`'s trainable parameters (decay on matrices only), warm-up then
        cosine decay (or constant), the resumed state when resuming; the model placed (and
        wrapped for N processes). `saved` (default: the model) is what checkpoints save."""
        cfg = self.cfg
        self.saved = saved if saved is not None else model
        opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, **adamw)
        if constant_lr:
            factor = constant_with_warmup(cfg.warmup_steps)
        else:
            factor = cosine_with_warmup(cfg.warmup_steps, cfg.steps)
        # The scheduler stays ours: accelerate's wrapper would step it once per process.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        self.first_step = resume_state(self.folder, opt, self.scheduler) if self.resume else 0
        self.loss_forward, self.optimizer = self.accelerator.prepare(_LossForward(model), opt)
        self.trained = [p for group in self.optimizer.param_groups for p in group["params"]]

    def micro_slices(self, n: int) -> list[slice]:
        """This process's share of each of the `grad_accum` micro-batches of a global batch
        of `n` rows."""
        micro = n // self.cfg.grad_accum
        share, rank = micro // self.accelerator.num_processes, self.accelerator.process_index
        starts = [m * micro + rank * share for m in range(self.cfg.grad_accum)]
        return [slice(start, start + share) for start in starts]

    def shares(self, examples: int) -> Callable[[int], Iterator[torch.Tensor]]:
        """Batches for `fit`: the step's seeded global batch of indices into `examples`, as
        this process's micro-batches."""

        def batches(step: int) -> Iterator[torch.Tensor]:
            idx = batch_indices(examples, self.cfg.batch_size, step, self.cfg.seed)
            return (idx[part] for part in self.micro_slices(len(idx)))

        return batches

    def fit(
        self,
        batches: Callable[[int], Iterable[Any]],
        loss_of: LossOf,
        progress: Callable[[int], None] | None = None,
        after_update: Callable[[dict[str, Any]], None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train from the first (or resumed) step to `cfg.steps`: each step, `loss_of` of
        every micro-batch that `batches(step)` yields (a loss, or a loss and stats to log),
        backward, clip, step; then `after_update(summary)`, logs and checkpoints. Returns
        the run's summary (with `extra`; also `run/summary.json`)."""
        cfg, acc = self.cfg, self.accelerator
        began, summary, step = time.time(), {}, self.first_step - 1
        for step in range(self.first_step, cfg.steps):
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout and sampling, reproducible on resume
            step_began = time.perf_counter()
            loss, stats = self._accumulate(batches(step), loss_of)
            grad_norm = acc.clip_grad_norm_(self.trained, cfg.max_grad_norm or math.inf)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            summary = {"loss": loss, "grad_norm": float(grad_norm), "lr": self.scheduler.get_last_lr()[0]}
            summary |= stats | {"seconds/step": time.perf_counter() - step_began}
            if after_update:
                after_update(summary)
            summary["seconds"] = time.time() - began
            if progress:
                progress(1)
            if self._end_step(step, summary):
                break
        return self._finish(step + 1, {**summary, **(extra or {})})

    def _accumulate(self, batches: Iterable[Any], loss_of: LossOf) -> tuple[float, dict[str, float]]:
        """Forward and backward of each micro-batch; the step's loss (mean over processes)
        and the last micro-batch's stats."""
        total, stats = 0.0, {}
        for batch in batches:
            out = self.loss_forward(loss_of, batch)
            loss, stats = out if isinstance(out, tuple) else (out, stats)
            loss = loss / self.cfg.grad_accum
            self.accelerator.backward(loss)
            total += loss.item()
        if self.accelerator.num_processes > 1:
            mine = torch.tensor(total, dtype=torch.float64, device=self.device)
            total = self.accelerator.reduce(mine, "mean").item()
        return total, stats

    def _end_step(self, step: int, summary: dict[str, Any]) -> bool:
        """Log and checkpoint when due; True when the time budget is spent (saved: stop)."""
        cfg, acc = self.cfg, self.accelerator
        last = step == cfg.steps - 1
        if step % cfg.log_every == 0 or last:
            self._log(step, summary)
        stop = self._out_of_time(summary["seconds"])
        if acc.is_main_process and ((step + 1) % cfg.save_every == 0 or last or stop):
            save_checkpoint(self.folder, self.saved, self.optimizer, self.scheduler, step + 1, summary)
        return stop

    def _out_of_time(self, seconds: float) -> bool:
        """Whether the time budget is spent, agreed by every process (else one would wait forever)."""
        if not self.cfg.max_minutes:
            return False
        late = torch.tensor(float(seconds > 60 * self.cfg.max_minutes), device=self.device)
        return bool(self.accelerator.reduce(late, reduction="sum").item() > 0)

    def _log(self, step: int, summary: dict[str, Any]) -> None:
        self.accelerator.log(summary, step=step)
        logger.info("step %d loss %.4f", step, summary["loss"])
        if self.accelerator.is_main_process:  # the curve as JSONL too, for reports without TensorBoard
            with (self.folder / "log.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, **summary}) + "\n")

    def _finish(self, steps: int, summary: dict[str, Any]) -> dict[str, Any]:
        for tracker in self.accelerator.trackers:  # not end_training(): it destroys the process
            tracker.finish()  # group, and a pipeline (stic base) trains several runs in one process
        result = {"run": str(self.folder), "steps": steps, "processes": self.accelerator.num_processes}
        return self.save_summary(result | summary)

    def save_summary(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write `run/summary.json` (on the main process); the summary."""
        if self.accelerator.is_main_process:
            write_json_atomic(self.folder / "summary.json", summary)
        return summary
