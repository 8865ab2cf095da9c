"""Chains of region stages, sharing every common prefix: `lm -> 1 -> 2 -> 3` is Osprey;
the ablations change the region input (mask or box), drop the spatial token, or skip a
stage. A chain's folder names its stages, so two chains that start alike reuse the same
stage runs, and a killed pipeline resumes at the first stage without a summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finevl.train.config import shared_fields
from finevl.train.loop import run_once
from finevl.train.region.config import RegionPipelineConfig, RegionTrainConfig
from finevl.train.region.stages import train_region_stage


@dataclass(frozen=True)
class Chain:
    """The stages after `lm`, and the region input the region stages (2, 3) see."""

    stages: tuple[str, ...] = ("1", "2", "3")
    region_input: str = "mask"
    spatial_token: bool = True

    def tag(self, stage: str) -> str:
        if stage in ("lm", "1"):  # no region is seen: shared by every variant
            return stage
        return f"{stage}{self.region_input}" + ("" if self.spatial_token else "-nopos")


OSPREY = Chain()


def _stage_config(
    cfg: RegionPipelineConfig, out: Path, stage: str, model: str, chain: Chain
) -> RegionTrainConfig:
    steps = {"lm": cfg.lm_steps, "1": cfg.stage1_steps, "2": cfg.stage2_steps, "3": cfg.stage3_steps}[stage]
    return shared_fields(
        RegionTrainConfig,
        cfg,
        out=str(out),
        stage=stage,
        model=model,
        steps=steps,
        warmup_steps=max(1, min(50, steps // 10)),
        save_every=steps,
        region_input=chain.region_input if stage in ("2", "3") else "",
        spatial_token=chain.spatial_token if stage in ("2", "3") else True,
    )


def run_chain(cfg: RegionPipelineConfig, chain: Chain = OSPREY, upto: int | None = None) -> str:
    """Train `lm` and the chain's stages (the first `upto` of them), each once; the last
    stage's model folder."""
    model, name = "", ""
    for stage in ["lm", *chain.stages[:upto]]:
        name = f"{name}-{chain.tag(stage)}" if name else chain.tag(stage)
        out = Path(cfg.out) / name
        stage_cfg = _stage_config(cfg, out, stage, model, chain)
        run_once(out / "summary.json", lambda c=stage_cfg: train_region_stage(c), out, stage_cfg)
        model = str(out / "checkpoint" / "model")
    return model
