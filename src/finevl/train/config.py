"""Training settings (light to import: the CLI builds its flags from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from finevl.errors import FinevlError


@dataclass
class ClipTrainConfig:
    """Settings of `finevl clip train`."""

    data: str = field(default="", metadata={"help": "World folder, shard folder/pattern or JSONL pairs."})
    out: str = field(default="", metadata={"help": "Run folder (checkpoints, logs, config)."})
    model: str = field(
        default="finevl-tiny-vit", metadata={"help": "Preset, open_clip architecture or checkpoint."}
    )
    steps: int = field(default=1000, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=128, metadata={"help": "Global batch (all processes, one micro-step)."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    weight_decay: float = field(
        default=0.1, metadata={"help": "AdamW weight decay (not on gains, biases, scale)."}
    )
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Clip the gradient norm to this; 0: no clipping."}
    )
    warmup_steps: int = field(default=100, metadata={"help": "Linear warm-up steps."})
    seed: int = field(default=0, metadata={"help": "Seed of init, batch order and caption sampling."})
    save_every: int = field(default=200, metadata={"help": "Checkpoint every N steps."})
    log_every: int = field(default=20, metadata={"help": "Log every N steps."})
    max_minutes: float = field(
        default=0.0, metadata={"help": "Stop (and save) after this long; 0: no limit."}
    )
    group_by: str = field(
        default="",
        metadata={"help": "Draw each batch from one group of this fact criterion (e.g. background)."},
    )
    split: str = field(default="train", metadata={"help": "Split of a world folder to train on."})

    def __post_init__(self) -> None:
        if not self.data or not self.out:
            raise FinevlError("--data and --out are required")
        if self.steps < 1 or self.batch_size < 2 or self.grad_accum < 1:
            raise FinevlError("--steps must be >= 1, --batch-size >= 2 and --grad-accum >= 1")
        if self.lr <= 0:
            raise FinevlError("--lr must be positive")
