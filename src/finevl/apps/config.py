"""Settings of the application commands (light to import: the CLI builds its flags from
them). Each class's docstring is its command's help."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from finevl.errors import FinevlError

EDIT_PARAMS = ("residual", "color")  # how an edit is parameterised (apps/editing.PARAMS)
BAD_IMAGE_HELP = "'error' stops at a bad image; 'skip' counts and skips it."


def _required(help_text: str, **meta: object) -> dict[str, object]:
    return {"help": help_text, "required": True, **meta}


@dataclass
class PlacedModel:
    """Where a command's model runs."""

    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N (auto: a GPU if any)."})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "auto, float32, bfloat16 or float16 (auto: bf16 on a GPU or on a CPU with fast "
            "bf16, AMX or AVX512-BF16; else fp32)."
        },
    )


@dataclass
class ClipCommand(PlacedModel):
    """A command that runs a CLIP."""

    model: str = field(
        default="", metadata=_required("Checkpoint dir (open_clip or HF), preset, or open_clip arch.")
    )
    weights: Path | None = field(
        default=None, metadata={"help": "Weights (.safetensors or open_clip_train .pt)."}
    )


@dataclass
class ZeroshotConfig(ClipCommand):
    """Zero-shot classification with prompt ensembling: acc1, acc5, mean per-class recall."""

    world: Path | None = field(default=None, metadata={"help": "A FineShapes world (labels from its files)."})
    label: str = field(default="shape", metadata={"help": "shape, color, size, pattern or background."})
    split: str = field(default="test", metadata={"help": "Split of the world, or 'all'."})
    folder: Path | None = field(default=None, metadata={"help": "Or: a folder of class sub-folders."})
    on_bad_image: str = field(default="error", metadata={"help": BAD_IMAGE_HELP})
    out: Path | None = field(default=None, metadata={"help": "Also write the JSON results here."})

    def __post_init__(self) -> None:
        if (self.world is None) == (self.folder is None):
            raise FinevlError("give exactly one of --world or --folder")


@dataclass
class RetrievalConfig(ClipCommand):
    """Image-text retrieval recall@1/5/10 both ways (CLIP_benchmark definitions)."""

    data: Path = field(default=Path(), metadata=_required("World folder, shards or JSONL pairs."))
    split: str | None = field(default="test", metadata={"help": "Split of a world folder."})
    captions: str = field(default="fine", metadata={"help": "'fine' (one per image) or 'refs' (all)."})
    limit: int | None = field(default=None, metadata={"help": "First N images only."})
    examples: int = field(default=0, metadata={"help": "Keep the top-3 images of the first N queries."})
    out: Path | None = field(default=None, metadata={"help": "Also write the JSON results here."})


@dataclass
class RetrievalCaptionConfig(ClipCommand):
    """Retrieval-based captioning: each image gets the pool caption closest to it."""

    data: Path = field(
        default=Path(), metadata=_required("Images to caption (world folder, shards or JSONL).")
    )
    pool: Path = field(default=Path(), metadata=_required("World folder whose captions form the pool."))
    out: Path = field(default=Path(), metadata=_required("Predictions, COCO results format."))
    split: str | None = field(default="test", metadata={"help": "Split of --data."})
    pool_split: str | None = field(default="train", metadata={"help": "Split of --pool."})
    pool_captions: str = field(default="all", metadata={"help": "'fine', 'refs' or 'all'."})


@dataclass
class CaptionGenerateConfig(PlacedModel):
    """Caption images with a trained captioner (its own CLIP computes the image tokens); on N
    processes under `accelerate launch`."""

    model: Path = field(default=Path(), metadata=_required("Captioner folder (a run's checkpoint/model)."))
    data: Path = field(default=Path(), metadata=_required("Images: a world folder, shards or JSONL pairs."))
    out: Path = field(default=Path(), metadata=_required("Predictions, COCO results format."))
    split: str | None = field(default="test", metadata={"help": "Split of --data."})
    decoding: str = field(default="greedy", metadata={"help": "greedy, beam or sample."})
    beams: int = field(default=3, metadata={"help": "Beam width."})
    max_new_tokens: int = field(default=20, metadata={"help": "At most 64."})
    limit: int | None = field(default=None, metadata={"help": "Only the first N images."})


@dataclass
class ScoreConfig(ClipCommand):
    """CLIP-S (2.5 * max(cos, 0)) and RefCLIP-S per image-caption pair, and their means; on N
    processes under `accelerate launch`."""

    pairs: Path = field(
        default=Path(),
        metadata=_required(
            "JSON/JSONL rows {image, caption, refs?} or CSV image,caption,refs.", argument=True
        ),
    )
    prefix: str = field(
        default="A photo depicts ",
        metadata={"help": "Prepended to candidates and references (Hessel et al.)."},
    )
    on_bad_image: str = field(default="error", metadata={"help": BAD_IMAGE_HELP})
    out: Path | None = field(default=None, metadata={"help": "Also write the JSON results here."})
    csv_out: Path | None = field(
        default=None, metadata={"help": "Also write per-item scores as CSV.", "flags": ("--csv",)}
    )


@dataclass
class IndexBuildConfig(ClipCommand):
    """Embed a collection's images and keep them in a faiss index on disk; on N processes
    under `accelerate launch`."""

    images: list[Path] = field(
        default_factory=list,
        metadata=_required("Image files and/or folders (searched recursively).", argument=True),
    )
    out: Path = field(default=Path(), metadata=_required("Index folder to write."))
    on_bad_image: str = field(default="error", metadata={"help": BAD_IMAGE_HELP})


@dataclass
class IndexQueryConfig(PlacedModel):
    """Nearest images to text or image queries, with cosine scores."""

    index: Path = field(
        default=Path(), metadata=_required("Index folder made by `finevl index build`.", argument=True)
    )
    text: list[str] = field(default_factory=list, metadata={"help": "Text query (repeatable)."})
    image: list[Path] = field(default_factory=list, metadata={"help": "Image query (repeatable)."})
    k: int = field(default=5, metadata={"help": "Results per query.", "flags": ("-k",)})

    def __post_init__(self) -> None:
        if not self.text and not self.image:
            raise FinevlError("give at least one --text or --image query")


@dataclass
class ModerateConfig(ClipCommand):
    """Flag images by natural-language criteria (prompts vs contrast prompts), thresholds
    calibrated on a small labelled set; precision and recall where labels are given."""

    images: list[Path] = field(
        default_factory=list, metadata={"help": "Images and/or folders to check.", "argument": True}
    )
    policy: Path | None = field(
        default=None, metadata={"help": "Policy YAML (default: the FineShapes demo)."}
    )
    calibrate: Path | None = field(
        default=None, metadata={"help": "World folder or labels JSONL to fit thresholds on."}
    )
    calibrate_split: str = field(default="val", metadata={"help": "World split for calibration."})
    evaluate: Path | None = field(
        default=None, metadata={"help": "World folder or labels JSONL to report P/R on."}
    )
    evaluate_split: str = field(default="test", metadata={"help": "World split for evaluation."})
    save_policy: Path | None = field(default=None, metadata={"help": "Write the calibrated policy here."})
    on_bad_image: str = field(default="error", metadata={"help": BAD_IMAGE_HELP})
    out: Path | None = field(default=None, metadata={"help": "Also write the JSON results here."})
    csv_out: Path | None = field(
        default=None, metadata={"help": "Per-image scores and flags as CSV.", "flags": ("--csv",)}
    )


@dataclass
class EditSettings:
    """How an edit is optimised (defaults: a few seconds on CPU for a tiny CLIP)."""

    steps: int = field(default=100, metadata={"help": "Optimisation steps."})
    lr: float = field(default=0.3, metadata={"help": "Adam learning rate of the edit's parameters."})
    param: str = field(
        default="residual", metadata={"help": "residual (free pixels) or color (a colour map)."}
    )
    scale: int = field(default=4, metadata={"help": "The residual is 1/scale of the image side."})
    views: int = field(default=8, metadata={"help": "Random views per step (0: the plain image only)."})
    noise: float = field(default=0.02, metadata={"help": "Pixel noise of each view (std, 0-1 scale)."})
    keep_inside: float = field(default=0.1, metadata={"help": "Preservation weight inside the mask."})
    keep_outside: float = field(default=10.0, metadata={"help": "Preservation weight outside it."})
    seed: int = field(default=0, metadata={"help": "Seed of the views."})

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise FinevlError(f"--steps must be at least 1, not {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.scale < 1 or self.views < 0 or self.noise < 0:
            raise FinevlError("--lr must be positive, --scale >= 1, --views and --noise >= 0")
        if not (self.keep_inside >= 0 and self.keep_outside >= 0):
            raise FinevlError("the preservation weights (--keep-outside) must be >= 0")
        if self.param not in EDIT_PARAMS:
            raise FinevlError(f"--param must be one of {', '.join(EDIT_PARAMS)}, not {self.param!r}")


@dataclass
class EditConfig(ClipCommand, EditSettings):
    """Edit an image toward a text with CLIP (or rank candidate edits by the same objective)."""

    image: Path = field(default=Path(), metadata=_required("The image to edit."))
    target: str = field(default="", metadata=_required("Text the edit moves toward."))
    source: str | None = field(
        default=None, metadata={"help": "Text of the image as it is: a directional edit."}
    )
    mask: Path | None = field(default=None, metadata={"help": "Mask image: where the edit may act."})
    candidate: list[Path] = field(
        default_factory=list, metadata={"help": "Rank these edited images instead; repeat."}
    )
    out: Path | None = field(default=None, metadata={"help": "Folder: edited.png, before_after.png, JSON."})
    save_every: int = field(default=0, metadata={"help": "Save the image every N steps."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.save_every < 0:
            raise FinevlError(f"--save-every must be >= 0, not {self.save_every}")
        if self.candidate and self.mask:
            raise FinevlError("--mask does not apply to --candidate ranking (candidates are whole images)")
        if not self.candidate and self.out is None:
            raise FinevlError("--out (a folder for the edit) is required")
