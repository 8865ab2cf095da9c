"""Settings of the STIC commands (light to import: the CLI builds its flags from them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from finevl.errors import FinevlError
from finevl.train.config import PRECISION_HELP, RunConfig, resolve_precision

TRAINABLE = ("lm", "projector", "projector+lm", "projector+lm+vision", "lora")


@dataclass
class LoraSettings:
    """LoRA on the language model's linear layers only (not the vision tower, the projector
    or the LM head: upstream's choice)."""

    lora_r: int = field(default=16, metadata={"help": "LoRA rank (upstream: 128 on a 7B model)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (upstream: 256)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})


@dataclass
class SupervisedConfig(RunConfig, LoraSettings):
    """One supervised stage of a vision-language model (loss on the answer tokens)."""

    model: str = field(default="", metadata={"help": "Model folder to start from."})
    train: str = field(default="projector+lm", metadata={"help": f"What trains: {', '.join(TRAINABLE)}."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train not in TRAINABLE:
            raise FinevlError(f"--train must be one of {', '.join(TRAINABLE)}, not {self.train!r}")


@dataclass
class BaseConfig:
    """The SFT base: a LLaVA from a CLIP tower and a fresh Llama; LM, alignment, instructions.

    Settings of `finevl stic base`: a LLaVA from a CLIP's tower and a fresh Llama, trained
    in three stages: language model on world text, projector alignment on image-caption
    pairs, then instruction tuning (descriptions, VQA, a few hallucination prompts).
    """

    CPU_AUTO: ClassVar[str] = "fp32"  # its stages in bf16: 0.75x fp32's steps/s (docs/performance.md)

    data: str = field(default="", metadata={"help": "World folder (images and annotations)."})
    clip: str = field(
        default="",
        metadata={"help": "CLIP whose image tower the model sees through (a ViT, or a conv tower's cells)."},
    )
    vision_stage: int = field(
        default=-1,
        metadata={
            "help": "Conv towers: the stage map (0-3) giving the image tokens; -1: the 1/16 map (res4)."
        },
    )
    out: str = field(default="", metadata={"help": "Run folder: tokenizer, one sub-run per stage."})
    lm: str = field(default="tiny", metadata={"help": "Language-model preset (tiny, small)."})
    lm_steps: int = field(default=600, metadata={"help": "Steps of language modelling on world text."})
    align_steps: int = field(default=300, metadata={"help": "Steps of projector alignment."})
    sft_steps: int = field(default=600, metadata={"help": "Steps of instruction tuning."})
    sft_images: int = field(default=1000, metadata={"help": "Images whose annotations instruction-tune."})
    train_vision: bool = field(
        default=False,
        metadata={"help": "Also train the vision tower during instruction tuning (LLaVA-1.6 does)."},
    )
    hallucination_share: float = field(
        default=0.1, metadata={"help": "Share of instruction images with a hallucination prompt."}
    )
    batch_size: int = field(default=32, metadata={"help": "Examples per step."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate (from scratch)."})
    seed: int = field(default=0, metadata={"help": "Seed of init, data and batch order."})
    split: str = field(default="train", metadata={"help": "Split of the world to train on."})
    precision: str = field(default="auto", metadata={"help": PRECISION_HELP})

    def __post_init__(self) -> None:
        if not self.data or not self.out or not self.clip:
            raise FinevlError("--data, --clip and --out are required")
        self.precision = resolve_precision(self.precision, self.CPU_AUTO)
        if min(self.lm_steps, self.align_steps, self.sft_steps, self.sft_images, self.batch_size) < 1:
            raise FinevlError("step counts, --sft-images and --batch-size must be >= 1")
        if not 0 <= self.hallucination_share <= 1:
            raise FinevlError("--hallucination-share must be in [0, 1]")


@dataclass
class PrefsConfig:
    """Stage 1 data: preferred (step-by-step) and dispreferred (hallucination/corruption)
    answers."""

    model: str = field(default="", metadata={"help": "Model folder that writes both answers."})
    data: str = field(default="", metadata={"help": "World folder or image folder (unlabeled images)."})
    out: str = field(default="", metadata={"help": "Preference JSONL to write."})
    images: int = field(default=500, metadata={"help": "How many images to use."})
    split: str = field(default="train", metadata={"help": "Split of a world folder."})
    exclude: str = field(default="", metadata={"help": "LLaVA-format JSON whose images are skipped."})
    corruption_share: float = field(
        default=0.5, metadata={"help": "Share of dispreferred answers from corrupted images."}
    )
    apply_corruption: bool = field(
        default=True, metadata={"help": "Feed the corrupted image (upstream's code does not)."}
    )
    temperature: float = field(default=0.2, metadata={"help": "Sampling temperature (upstream 0.2)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer in tokens."})
    seed: int = field(default=0, metadata={"help": "Seed of image order, prompts and sampling."})

    def __post_init__(self) -> None:
        if not self.model or not self.data or not self.out:
            raise FinevlError("--model, --data and --out are required")
        if self.images < 1 or self.max_new_tokens < 1:
            raise FinevlError("--images and --max-new-tokens must be >= 1")
        if not 0 <= self.corruption_share <= 1 or self.temperature < 0:
            raise FinevlError("--corruption-share must be in [0, 1] and --temperature >= 0")


@dataclass
class DpoConfig(LoraSettings):
    """Stage 1 training: TRL DPO (sigmoid + SFT term) with a LoRA adapter; merged model out.

    Settings of `finevl stic dpo` (stage 1 training, TRL's DPOTrainer with LoRA).
    """

    CPU_AUTO: ClassVar[str] = "fp32"  # TRL's DPO on the tiny LLaVA in bf16: 0.87x fp32's steps/s

    model: str = field(default="", metadata={"help": "Model folder to align."})
    prefs: str = field(default="", metadata={"help": "Preference JSONL from `finevl stic prefs`."})
    data: str = field(default="", metadata={"help": "Folder the preference records' images are under."})
    out: str = field(default="", metadata={"help": "Run folder (TRL output, then the model)."})
    beta: float = field(default=0.1, metadata={"help": "DPO beta (sigmoid loss)."})
    sft_weight: float = field(
        default=0.05, metadata={"help": "Weight of the SFT term on the preferred answer (0: none)."}
    )
    lr: float = field(default=5e-4, metadata={"help": "Learning rate (upstream 1e-7 on a 7B model)."})
    epochs: float = field(default=1.0, metadata={"help": "Epochs over the preferences (upstream 1)."})
    batch_size: int = field(default=8, metadata={"help": "Global batch (upstream 8)."})
    drop_image: bool = field(
        default=False, metadata={"help": "Train without the image, as upstream's released code does."}
    )
    merge: bool = field(default=True, metadata={"help": "Save the merged model too (else adapter only)."})
    seed: int = field(default=0, metadata={"help": "Seed of LoRA init and batch order."})
    precision: str = field(default="auto", metadata={"help": PRECISION_HELP})

    def __post_init__(self) -> None:
        if not self.model or not self.prefs or not self.out:
            raise FinevlError("--model, --prefs and --out are required")
        self.precision = resolve_precision(self.precision, self.CPU_AUTO)
        if self.beta <= 0 or self.lr <= 0 or self.epochs <= 0 or self.batch_size < 1:
            raise FinevlError("--beta, --lr and --epochs must be positive, --batch-size >= 1")


@dataclass
class DiftConfig(SupervisedConfig):
    """Stage 2: fine-tune with the model's own image descriptions infused into the prompts.

    Settings of `finevl stic dift` (stage 2: description-infused fine-tuning).
    """

    train: str = field(default="lora", metadata={"help": f"What trains: {', '.join(TRAINABLE)}."})
    lr: float = field(default=5e-4, metadata={"help": "Peak learning rate (upstream 2e-5 on a 7B model)."})
    steps: int = field(default=100, metadata={"help": "Optimizer steps (upstream: one epoch)."})
    instructions: str = field(default="", metadata={"help": "LLaVA-format instruction JSON (the base's)."})
    examples: int = field(default=1000, metadata={"help": "Instruction examples to infuse and train on."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest self-description in tokens."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model or not self.instructions:
            raise FinevlError("--model and --instructions are required")
        if self.examples < 1:
            raise FinevlError("--examples must be >= 1")


@dataclass
class PipelineConfig:
    """A small STIC run: base, preferences, DPO, DIFT, each evaluated (results/vqa-*.json).

    Settings of `finevl stic quickstart` (small defaults: a few minutes on two cores).
    """

    data: str = field(default="", metadata={"help": "World folder."})
    clip: str = field(
        default="",
        metadata={"help": "CLIP whose image tower the model uses (a ViT, or a conv tower's cells)."},
    )
    vision_stage: int = field(
        default=-1,
        metadata={"help": "Conv towers: the stage map whose cells are the image tokens; -1: auto."},
    )
    out: str = field(default="", metadata={"help": "Run folder (one sub-folder per stage)."})
    lm_steps: int = field(default=200, metadata={"help": "Base: language-model steps."})
    align_steps: int = field(default=60, metadata={"help": "Base: projector-alignment steps."})
    sft_steps: int = field(default=200, metadata={"help": "Base: instruction-tuning steps."})
    sft_images: int = field(default=400, metadata={"help": "Base: instruction images."})
    train_vision: bool = field(default=False, metadata={"help": "Base: train the vision tower in SFT too."})
    pref_images: int = field(default=160, metadata={"help": "Stage 1: unlabeled images."})
    temperature: float = field(default=0.2, metadata={"help": "Stage 1: sampling temperature."})
    dift_steps: int = field(default=40, metadata={"help": "Stage 2: fine-tuning steps."})
    dift_examples: int = field(default=300, metadata={"help": "Stage 2: infused instruction turns."})
    eval_images: int = field(default=50, metadata={"help": "Held-out test images to evaluate on."})
    seed: int = field(default=0, metadata={"help": "Seed of every stage."})

    def __post_init__(self) -> None:
        if not self.data or not self.clip or not self.out:
            raise FinevlError("--data, --clip and --out are required")
        counts = (self.sft_images, self.pref_images, self.dift_steps, self.dift_examples, self.eval_images)
        if min(counts) < 1:
            raise FinevlError("image counts, --dift-steps and --dift-examples must be >= 1")
