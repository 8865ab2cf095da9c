"""Settings of the region commands (light to import: the CLI builds its flags from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from finevl.errors import FinevlError
from finevl.train.config import RunConfig

STAGES = ("lm", "1", "2", "3")
# What trains in each stage; the CLIP tower never does (upstream: frozen throughout).
TRAINABLE = {"lm": ("lm",), "1": ("projector",), "2": ("extractor",), "3": ("projector", "extractor", "lm")}


@dataclass
class RegionTrainConfig(RunConfig):
    """One Osprey stage: lm (new model, world text), 1 projector, 2 mask extractor, 3 end-to-
    end.

    One stage of Osprey-style training. `lm`: a new model (CLIP tower + fresh Llama) learns
    world text; `1`: image-text alignment (projector); `2`: mask-text alignment (extractor);
    `3`: end-to-end instructions (projector, extractor, LM; tower frozen).
    """

    data: str = field(default="", metadata={"help": "World folder, or an Osprey-format JSON file."})
    images_dir: str = field(default="", metadata={"help": "Image folder of an Osprey JSON file."})
    stage: str = field(default="1", metadata={"help": f"Stage: {', '.join(STAGES)}."})
    model: str = field(default="", metadata={"help": "Region model to start from (stages 1-3)."})
    clip: str = field(default="", metadata={"help": "Convolutional CLIP for a new model (stage lm)."})
    lm: str = field(default="tiny", metadata={"help": "Language-model preset of a new model."})
    images: int = field(default=1000, metadata={"help": "World images the stage's data is drawn from."})
    region_input: str = field(default="", metadata={"help": "mask or box (empty: the start model's)."})
    spatial_token: bool = field(
        default=True, metadata={"help": "Use the spatial token (off stays off in later stages)."}
    )
    lr: float = field(
        default=1e-3, metadata={"help": "Peak learning rate (from scratch; upstream 2e-5/1e-5)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Turns per step."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage not in STAGES:
            raise FinevlError(f"--stage must be one of {', '.join(STAGES)}, not {self.stage!r}")
        if self.stage == "lm" and not self.clip:
            raise FinevlError("--stage lm builds a new model: --clip (a convolutional CLIP) is required")
        if self.stage != "lm" and not self.model:
            raise FinevlError(f"--stage {self.stage} needs --model (the previous stage's model)")
        if self.region_input not in ("", "mask", "box"):
            raise FinevlError(f"--region-input must be mask or box, not {self.region_input!r}")
        if self.images < 1:
            raise FinevlError("--images must be >= 1")


@dataclass
class RegionEvalConfig:
    """Region evaluation: classification (SS, S-IoU), open-vocab segmentation (mIoU, PQ),
    captioning, description."""

    model: str = field(default="", metadata={"help": "Region model folder."})
    data: str = field(default="", metadata={"help": "World folder."})
    out: str = field(default="", metadata={"help": "Results JSON (answers go beside it)."})
    split: str = field(default="test", metadata={"help": "Split of the world."})
    limit: int = field(default=200, metadata={"help": "Test images (all their regions are asked)."})
    label: str = field(default="", metadata={"help": "Row name in reports (default: from the path)."})
    batch_size: int = field(default=64, metadata={"help": "Questions per generation batch."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N."})
    dtype: str = field(
        default="auto", metadata={"help": "auto, float32, bfloat16 or float16 (auto: bf16 where fast)."}
    )

    def __post_init__(self) -> None:
        if not self.model or not self.data or not self.out:
            raise FinevlError("--model, --data and --out are required")
        if self.limit < 1 or self.batch_size < 1 or not 1 <= self.max_new_tokens <= 256:
            raise FinevlError("--limit and --batch-size must be >= 1, --max-new-tokens in 1..256")


@dataclass
class RegionPipelineConfig:
    """A small Osprey run: LM, stages 1-3, evaluated (results/region.json + answers).

    Settings of `finevl region quickstart` and of each row of `benchmarks/region.py`.
    """

    data: str = field(default="", metadata={"help": "World folder."})
    clip: str = field(default="", metadata={"help": "Convolutional CLIP whose tower the model uses."})
    out: str = field(default="", metadata={"help": "Run folder (one sub-folder per stage chain)."})
    lm_steps: int = field(default=200, metadata={"help": "Language-model steps on world text."})
    stage1_steps: int = field(default=60, metadata={"help": "Stage 1 (projector) steps."})
    stage2_steps: int = field(default=100, metadata={"help": "Stage 2 (extractor) steps."})
    stage3_steps: int = field(default=200, metadata={"help": "Stage 3 (end-to-end) steps."})
    images: int = field(default=400, metadata={"help": "Training images per stage."})
    eval_images: int = field(default=40, metadata={"help": "Test images evaluated (all their objects)."})
    batch_size: int = field(default=32, metadata={"help": "Turns per step."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate of every stage."})
    seed: int = field(default=0, metadata={"help": "Seed of every stage."})

    def __post_init__(self) -> None:
        if not self.data or not self.clip or not self.out:
            raise FinevlError("--data, --clip and --out are required")
        steps = (self.lm_steps, self.stage1_steps, self.stage2_steps, self.stage3_steps)
        if min(*steps, self.images, self.eval_images, self.batch_size) < 1:
            raise FinevlError("step counts, --images, --eval-images and --batch-size must be >= 1")
