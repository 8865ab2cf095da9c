"""The whole STIC pipeline in one call, at a chosen size: base -> preferences -> DPO -> DIFT,
each stage's model evaluated on held-out VQA. `finevl stic quickstart` runs a small one;
`benchmarks/stic.py` runs its rows (sharing the base across them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finevl.data.jsonio import write_json_atomic
from finevl.train.config import shared_fields
from finevl.train.loop import run_once
from finevl.train.stic.base import base_model, train_base
from finevl.train.stic.config import BaseConfig, DiftConfig, DpoConfig, PipelineConfig, PrefsConfig
from finevl.train.stic.dift import train_dift
from finevl.train.stic.dpo import train_dpo
from finevl.train.stic.prefs import make_preferences


def stic_variant(
    cfg: PipelineConfig,
    base: str,
    instructions: str,
    name: str,
    corruption_share: float = 0.5,
    apply_corruption: bool = True,
    drop_image: bool = False,
    dift: bool = True,
) -> dict[str, str]:
    """Stage 1 (and 2) from a finished base, into `out/name/`: {stage: model folder}."""
    out = Path(cfg.out) / name
    prefs = PrefsConfig(
        model=base,
        data=cfg.data,
        out=str(out / "prefs.jsonl"),
        images=cfg.pref_images,
        exclude=instructions,
        corruption_share=corruption_share,
        apply_corruption=apply_corruption,
        temperature=cfg.temperature,
        seed=cfg.seed,
    )
    run_once(out / "prefs.json", lambda: _saved(out / "prefs.json", make_preferences(prefs)))
    dpo = DpoConfig(
        model=base, prefs=prefs.out, data=cfg.data, out=str(out / "dpo"), drop_image=drop_image, seed=cfg.seed
    )
    models = {"dpo": run_once(out / "dpo" / "summary.json", lambda: train_dpo(dpo), out / "dpo")["model"]}
    if dift:
        dift_cfg = DiftConfig(
            data=cfg.data,
            out=str(out / "dift"),
            model=models["dpo"],
            instructions=instructions,
            examples=cfg.dift_examples,
            steps=cfg.dift_steps,
            batch_size=16,
            warmup_steps=max(1, cfg.dift_steps // 10),
            save_every=cfg.dift_steps,
            seed=cfg.seed,
        )
        run_once(out / "dift" / "summary.json", lambda: train_dift(dift_cfg), out / "dift")
        models["dift"] = str(out / "dift" / "checkpoint" / "model")
    return models


def _saved(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    write_json_atomic(path, summary)
    return summary


def run_base(cfg: PipelineConfig) -> tuple[str, str]:
    """(base model folder, its instruction JSON), trained once under `out/base`."""
    base_cfg = shared_fields(BaseConfig, cfg, out=str(Path(cfg.out) / "base"))
    summary = run_once(Path(base_cfg.out) / "summary.json", lambda: train_base(base_cfg, resume=True))
    return str(base_model(base_cfg.out)), summary["instructions"]
