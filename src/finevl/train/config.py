"""Training settings (light to import: the CLI builds its flags from them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from finevl.errors import FinevlError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PRECISION_HELP = (
    "auto, fp32, bf16 or fp16 (autocast; fp16 on a GPU). auto: bf16 on a GPU; on a CPU with "
    "fast bf16 (AMX, AVX512-BF16), bf16 where this trainer measured faster so; else fp32."
)
_LOW_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def resolve_precision(precision: str, cpu_auto: str = "bf16") -> str:
    """The precision a `--precision` value runs at here: one error line for an unknown one;
    `auto` is `accelerate launch --mixed_precision` when that gave bf16/fp16, else bf16 on a
    GPU (fp16 where it lacks bf16) or on a CPU with fast bf16 (`cpu_auto`: a trainer whose
    measured bf16 speed-up is too small says fp32), else fp32. Run folders record the result."""
    if precision not in PRECISIONS:
        raise FinevlError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launched in ("bf16", "fp16"):
        return launched
    import torch

    from finevl.models.device import dtype_name, fast_low_precision

    if torch.cuda.is_available():
        return _LOW_PRECISION[dtype_name(fast_low_precision(torch.device("cuda")))]
    return cpu_auto if fast_low_precision(torch.device("cpu")) == torch.bfloat16 else "fp32"


@dataclass
class RunConfig:
    """What every trainer shares: data, run folder, schedule, precision, bookkeeping."""

    # `--precision auto` on a CPU with fast bf16, per trainer: bf16 where it measured >= 1.4x
    # fp32's steps/s at the command's defaults (benchmarks/precision.py, docs/performance.md).
    # The tiny presets' 128-256 wide layers are bound by memory and per-op overhead, not by
    # matmul arithmetic, so most trainers keep fp32 there; a GPU's auto is bf16 for all.
    CPU_AUTO: ClassVar[str] = "fp32"

    data: str = field(default="", metadata={"help": "World folder (images + captions.json)."})
    out: str = field(default="", metadata={"help": "Run folder (checkpoints, logs, config)."})
    steps: int = field(default=1000, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=32, metadata={"help": "Global batch (all processes and micro-steps)."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    lr: float = field(default=5e-4, metadata={"help": "Peak learning rate."})
    warmup_steps: int = field(default=50, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (matrices only)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Clip the gradient norm; 0: no clipping."})
    seed: int = field(default=0, metadata={"help": "Seed of init, batch order and sampling."})
    save_every: int = field(default=200, metadata={"help": "Checkpoint every N steps."})
    log_every: int = field(default=20, metadata={"help": "Log every N steps."})
    max_minutes: float = field(default=0.0, metadata={"help": "Stop (and save) after this long; 0: none."})
    split: str = field(default="train", metadata={"help": "Split of the world folder to train on."})
    precision: str = field(default="auto", metadata={"help": PRECISION_HELP})

    def __post_init__(self) -> None:
        if not self.data or not self.out:
            raise FinevlError("--data and --out are required")
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise FinevlError("--steps, --batch-size and --grad-accum must be >= 1")
        self.precision = resolve_precision(self.precision, self.CPU_AUTO)
        if self.lr <= 0:
            raise FinevlError("--lr must be positive")


@dataclass
class ClipTrainConfig(RunConfig):
    """Contrastive training (open_clip ClipLoss) on accelerate; CPU, multi-process or GPU."""

    data: str = field(default="", metadata={"help": "World, shards or JSONL pairs; several joined by ::."})
    model: str = field(
        default="finevl-tiny-vit", metadata={"help": "Preset, open_clip architecture or checkpoint."}
    )
    batch_size: int = field(default=128, metadata={"help": "Global batch (all processes and micro-steps)."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    weight_decay: float = field(
        default=0.1, metadata={"help": "AdamW weight decay (not on gains, biases, scale)."}
    )
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Clip the gradient norm to this; 0: no clipping."}
    )
    warmup_steps: int = field(default=100, metadata={"help": "Linear warm-up steps."})
    group_by: str = field(
        default="",
        metadata={"help": "Draw each batch from one group of this fact criterion (e.g. background)."},
    )
    lock_image: bool = field(
        default=False,
        metadata={"help": "Freeze the image tower (LiT): only the text side learns to read it."},
    )
    unlock_image_head: bool = field(
        default=False,
        metadata={"help": "With --lock-image: the pool and projection after a timm trunk keep learning."},
    )
    hard_negatives: int = field(
        default=0,
        metadata={"help": "K compositional negatives per caption in the image-to-text softmax (NegCLIP)."},
    )
    negative_vocab: str = field(
        default="",
        metadata={"help": "Vocabulary JSON for the negatives' word swaps; empty: the world's."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 2:
            raise FinevlError("--batch-size must be >= 2 (a contrastive batch)")
        if self.hard_negatives < 0:
            raise FinevlError("--hard-negatives must be >= 0")
        if self.negative_vocab and not self.hard_negatives:
            raise FinevlError("--negative-vocab needs --hard-negatives K")
        if self.unlock_image_head and not self.lock_image:
            raise FinevlError("--unlock-image-head needs --lock-image")


@dataclass
class CaptionTrainConfig(RunConfig):
    """MLE training of a captioner on the references (a world's coarse captions)."""

    CPU_AUTO: ClassVar[str] = "bf16"  # 1.59x fp32 (docs/performance.md)

    clip: str = field(default="", metadata={"help": "Frozen CLIP whose image tokens the captioner reads."})
    model: str = field(default="", metadata={"help": "Captioner to start from; empty: a new one."})
    d_model: int = field(default=256, metadata={"help": "Decoder width (new captioner)."})
    layers: int = field(default=3, metadata={"help": "Decoder layers (new captioner)."})
    heads: int = field(default=4, metadata={"help": "Attention heads (new captioner)."})
    max_length: int = field(default=32, metadata={"help": "Longest training caption in tokens."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.clip and not self.model:
            raise FinevlError("--clip is required for a new captioner")
        if self.d_model < 1 or self.heads < 1 or self.d_model % self.heads or self.layers < 1:
            raise FinevlError("--d-model must be a positive multiple of --heads, --layers >= 1")
        if not 3 <= self.max_length <= 80:
            raise FinevlError("--max-length must be in 3..80 (BOS + words + EOS; 80 positions)")


@dataclass
class ScstConfig(RunConfig):
    """Self-critical RL of a captioner: CLIP-S, CIDEr-D, RefCLIP-S and grammar rewards,
    weighted.

    Settings of `finevl caption scst`. Upstream: Adam at a constant 5e-6, each gradient
    value clipped at 0.1, 5 samples, greedy baseline, length 20, 2.0 x CLIP-S + 1.0 x CIDEr-D
    or + 1.0 x grammar. finevl: AdamW at a constant 1e-5 after an optional warm-up, gradient
    norm clipped at 1.0 (minutes of RL, not days; 5e-5 collapses to background-only captions).
    """

    lr: float = field(default=1e-5, metadata={"help": "Learning rate (constant after warm-up)."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    model: str = field(default="", metadata={"help": "Captioner to start from (the MLE run's model)."})
    clip: str = field(default="", metadata={"help": "Reward CLIP; empty: the captioner's own CLIP."})
    grammar: str = field(default="", metadata={"help": "Grammar model folder (finevl grammar train)."})
    clip_s_weight: float = field(default=2.0, metadata={"help": "Weight of CLIP-S in the reward."})
    cider_weight: float = field(default=0.0, metadata={"help": "Weight of CIDEr-D (training refs' df)."})
    refclip_weight: float = field(default=0.0, metadata={"help": "Weight of RefCLIP-S."})
    grammar_weight: float = field(default=0.0, metadata={"help": "Weight of P(grammatical)."})
    samples: int = field(default=5, metadata={"help": "Sampled captions per image."})
    baseline: str = field(default="greedy", metadata={"help": "greedy (upstream) or mean (of the others)."})
    max_new_tokens: int = field(default=20, metadata={"help": "Longest sampled caption."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise FinevlError("--model (the captioner to fine-tune) is required")
        if self.baseline not in ("greedy", "mean"):
            raise FinevlError(f"--baseline must be greedy or mean, not {self.baseline!r}")
        if self.samples < 2 and self.baseline == "mean":
            raise FinevlError("--baseline mean needs --samples >= 2")
        if self.grammar_weight and not self.grammar:
            raise FinevlError("--grammar-weight needs --grammar")
        if not any((self.clip_s_weight, self.cider_weight, self.refclip_weight, self.grammar_weight)):
            raise FinevlError("every reward weight is 0: nothing to optimise")
        if self.samples < 1 or not 1 <= self.max_new_tokens <= 64:
            raise FinevlError("--samples must be >= 1 and --max-new-tokens in 1..64")


@dataclass
class GrammarTrainConfig(RunConfig):
    """Fine-tune CLIP's text tower with a grammar head (contrastive + grammar loss).

    Settings of `finevl grammar train` (upstream: AdamW 1e-4, weight decay 0.01,
    contrastive + grammar cross-entropy 1:1, image tower frozen). At FineShapes scale 1e-4
    leaves the grammar loss at chance after 250 steps; 5e-4 learns it in 500.
    """

    clip: str = field(default="", metadata={"help": "CLIP to fine-tune (its text tower and projection)."})
    lr: float = field(default=5e-4, metadata={"help": "Peak learning rate (upstream: 1e-4, over epochs)."})
    steps: int = field(default=500, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=64, metadata={"help": "Captions per step (and as many negatives)."})
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Clip the gradient norm; 0: none (upstream)."}
    )
    eval_split: str = field(default="val", metadata={"help": "Split whose references test the head."})
    model: str = field(default="", metadata={"help": "(internal) start model; the CLIP when empty."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.clip:
            raise FinevlError("--clip is required")


def shared_fields(cls: type, source: Any, **overrides: Any) -> Any:
    """A `cls` settings dataclass with the fields it shares with `source` (a dataclass or
    argparse namespace) copied over, then `overrides`."""
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in vars(source).items() if k in names}
    return cls(**{**values, **overrides})


@dataclass
class TowerTrainConfig(RunConfig):
    """Train the image tower on a world's attributes (or a linear probe of it, --freeze): what
    it sees, per attribute; the image side of LiT (then clip train --lock-image).

    Settings of `finevl clip tower`: the image tower (or, with `freeze`, a linear head on
    it) trained on a world's attributes. A probe of what a tower sees, and the image side of
    locked-image tuning (then `finevl clip train --lock-image`).
    """

    CPU_AUTO: ClassVar[str] = "bf16"  # the conv tower: 1.83x fp32 (docs/performance.md)

    model: str = field(
        default="finevl-tiny-vit", metadata={"help": "Preset, open_clip architecture or checkpoint."}
    )
    steps: int = field(default=300, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=128, metadata={"help": "Images per step."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    warmup_steps: int = field(default=30, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (matrices only)."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "Clip the gradient norm; 0: no clipping."})
    attributes: str = field(
        default="shape,color,size,pattern,background",
        metadata={"help": "Comma-separated attributes the head predicts."},
    )
    freeze: bool = field(default=False, metadata={"help": "Train only a linear head (a linear probe)."})
    dense_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of dense supervision: each stage-map cell names its object (needs masks)."},
    )
    dense_stages: str = field(
        default="2,3", metadata={"help": "Comma-separated stage maps (0-3) the dense heads read."}
    )
    relation_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the relation head: the embedding names the relation triples (needs scenes)."
        },
    )
    binding_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of the binding head: the embedding names its (colour, shape), ... pairs."},
    )
    eval_data: str = field(default="", metadata={"help": "World to measure on; empty: --data."})
    eval_split: str = field(default="test", metadata={"help": "Split of the evaluation world."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.dense_weight, self.relation_weight, self.binding_weight) < 0:
            raise FinevlError("--dense-weight, --relation-weight and --binding-weight must be >= 0")
        try:
            stages = self.stage_indices()
        except ValueError:
            raise FinevlError(
                f"--dense-stages {self.dense_stages!r}: comma-separated integers, e.g. 2,3"
            ) from None
        if self.dense_weight and (not stages or any(not 0 <= k <= 3 for k in stages)):
            raise FinevlError(f"--dense-stages {self.dense_stages!r}: one or more stage indices 0-3")

    def stage_indices(self) -> list[int]:
        """The stage maps the dense heads read (none without dense supervision)."""
        if not self.dense_weight:
            return []
        return [int(k) for k in self.dense_stages.split(",") if k.strip()]
