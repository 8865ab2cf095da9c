"""The pieces of `Trainer` that stand alone: the learning-rate schedules, AdamW parameter
groups, seeded batch order, the run folder (settings checked on resume), atomic checkpoints
that resume bit-for-bit, and a pipeline stage's run-once check."""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import torch

from finevl.data.files import atomic_dir, claim_output, make_own_folder, remove_stale_temps
from finevl.data.jsonio import read_json, write_json_atomic, write_text_atomic
from finevl.errors import FinevlError

logger = logging.getLogger(__name__)
# How runs written before a setting existed ran, where that is not today's default.
PREDATED = {"precision": "fp32"}


def cosine_with_warmup(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def constant_with_warmup(warmup: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then constant (SCST)."""
    return lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0


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


def save_checkpoint(run: Path, model: Any, opt: Any, sched: Any, step: int, summary: dict[str, Any]) -> None:
    """Write `run/checkpoint/` atomically: the model (anything with `.save(dir)`), optimizer and
    scheduler state (`state.pt`, read back with weights_only=True) and progress."""
    with atomic_dir(run / "checkpoint", legacy=("progress.json",)) as tmp:
        model.save(tmp / "model")
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp / "state.pt")
        write_json_atomic(tmp / "progress.json", {"step": step, **summary})


def resume_state(run: Path, opt: Any, sched: Any) -> int:
    ckpt = run / "checkpoint"
    if not (ckpt / "progress.json").is_file():
        return 0
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    step = int(read_json(ckpt / "progress.json")["step"])
    _trim_log(run / "log.jsonl", step)
    return step


def _trim_log(log: Path, step: int) -> None:
    """Drop the lines a killed run logged after its last checkpoint: they are run again."""
    if log.is_file():
        lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if json.loads(line).get("step", -1) < step]
        if len(kept) < len(lines):
            write_text_atomic(log, "".join(kept))


def open_run_folder(run: Path, cfg: Any, resume: bool, settings: str = "config.json") -> bool:
    """Check or claim a run folder; True when resuming. Resuming needs the settings saved in
    `settings` to equal `cfg`'s (the time budget aside); a new run needs an empty folder,
    claimed (never a user's file, a link, or a read-only place), its settings written."""
    saved = run / settings
    if resume and not run.is_symlink() and saved.is_file():
        before, now = _comparable(_with_defaults(read_json(saved), cfg)), _comparable(asdict(cfg))
        if before != now:
            raise FinevlError(
                f"{run}: --resume with different settings than {saved}{_differences(before, now)}"
            )
        return True
    if run.is_dir() and not run.is_symlink() and any(run.iterdir()):
        hint = "pass --resume to continue it" if saved.is_file() else "choose another --out"
        raise FinevlError(f"{run}: run folder is not empty; {hint}")
    claim_output(run, folder=True)
    make_own_folder(run)
    write_json_atomic(saved, asdict(cfg))
    return False


def _differences(before: Any, now: Any) -> str:
    """`: precision bf16 there, fp32 here` for the settings that differ (a few, by name)."""
    if not isinstance(before, dict) or not isinstance(now, dict):
        return ""
    names = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    return ": " + "; ".join(f"{k} {before.get(k)!r} there, {now.get(k)!r} here" for k in names[:3])


def _comparable(settings: Any) -> Any:
    return {k: v for k, v in settings.items() if k != "max_minutes"} if isinstance(settings, dict) else None


def _with_defaults(saved: Any, cfg: Any) -> Any:
    """Saved settings with each setting the run predates (added to finevl since it was
    written) read as the behaviour the run had: its default (`grad_accum` 1), or `PREDATED`
    where the default has changed since (`precision` fp32, before `auto`)."""
    return _defaults(cfg) | PREDATED | saved if isinstance(saved, dict) else saved


def _defaults(cfg: Any) -> dict[str, Any]:
    """A config dataclass's fields that have defaults, as JSON would hold them."""
    out = {}
    for f in fields(cfg):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return json.loads(json.dumps(out, default=str))


def prepare_run(cfg: Any, resume: bool) -> tuple[Path, str | Path]:
    """The run folder, and the model to start from (the checkpoint when resuming). `cfg` is a
    trainer's config dataclass with `out` and `model`; resuming needs the same settings."""
    run = Path(cfg.out)
    if not open_run_folder(run, cfg, resume):
        return run, cfg.model
    remove_stale_temps(run, "checkpoint")  # a kill during a checkpoint's write
    ckpt_model = run / "checkpoint" / "model"
    return run, ckpt_model if ckpt_model.is_dir() else cfg.model


def run_once(
    path: Path, make: Callable[[], dict[str, Any]], folder: Path | None = None, settings: Any = None
) -> dict[str, Any]:
    """A pipeline stage's summary: read back when it already ran (so a killed pipeline
    resumes), unless `settings` (a trainer config) differ from the run's saved
    `config.json`, which is refused. A stage killed midway (`folder` without the summary) is
    run again from scratch (pipeline stages are deterministic)."""
    if path.is_file():
        saved = path.parent / "config.json"
        if settings is not None and saved.is_file() and read_json(saved) != asdict(settings):
            raise FinevlError(f"{path.parent}: ran with other settings; choose another --out or delete it")
        return read_json(path)
    if folder is not None and folder.exists():
        shutil.rmtree(folder)
    return make()
