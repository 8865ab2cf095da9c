"""Settings of the evaluation commands (light to import: the CLI builds its flags from them).
Each class's docstring is its command's help."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finevl.apps.config import BAD_IMAGE_HELP, ClipCommand, PlacedModel
from finevl.errors import FinevlError


@dataclass
class ComposeConfig(ClipCommand):
    """Compositional accuracy (SugarCrepe categories), next to a text-only baseline."""

    out: Path = field(default=Path(), metadata={"help": "Results JSON.", "required": True})
    world: Path | None = field(
        default=None, metadata={"help": "A FineShapes world (pairs made from its scenes)."}
    )
    sugarcrepe: Path | None = field(
        default=None, metadata={"help": "Or: SugarCrepe's folder of category JSON files."}
    )
    images: Path | None = field(default=None, metadata={"help": "The COCO val2017 images of --sugarcrepe."})
    split: str = field(default="test", metadata={"help": "Split of the world, or 'all'."})
    limit: int | None = field(default=None, metadata={"help": "First N world images / pairs per category."})
    seed: int = field(default=0, metadata={"help": "Seed of the world's pairs."})
    on_bad_image: str = field(default="error", metadata={"help": BAD_IMAGE_HELP})

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise FinevlError(f"--limit must be at least 1, not {self.limit}")
        if self.world is not None and self.sugarcrepe is not None:
            raise FinevlError(f"{self.sugarcrepe}: give --world or --sugarcrepe, not both")
        if self.sugarcrepe is not None and self.images is None:
            raise FinevlError(f"{self.sugarcrepe}: --sugarcrepe needs --images (the COCO val2017 folder)")
        if self.sugarcrepe is None and self.images is not None:
            raise FinevlError(f"{self.images}: --images goes with --sugarcrepe")
        if self.world is None and self.sugarcrepe is None:
            raise FinevlError("give --world, or --sugarcrepe with --images")


@dataclass
class FinecapEvalConfig(PlacedModel):
    """Score generated captions: n-gram metrics per criterion, fact P/R/F1, CLIP-S, R@k."""

    pred: Path = field(
        default=Path(), metadata={"help": "Predictions, COCO results format.", "required": True}
    )
    ann: Path = field(
        default=Path(),
        metadata={
            "help": "A world-style folder (captions.json, finecap.json) or a FineCapEval CSV.",
            "required": True,
        },
    )
    clip: str | None = field(
        default=None, metadata={"help": "Frozen CLIP for CLIP-S, RefCLIP-S and retrieval."}
    )
    images: Path | None = field(default=None, metadata={"help": "Folder of the CSV's images (for --clip)."})
    meteor: bool = field(default=True, metadata={"help": "METEOR needs Java."})
    out: Path | None = field(default=None, metadata={"help": "Also write the JSON results here."})

    def __post_init__(self) -> None:
        if self.images is not None and self.ann.is_dir():
            raise FinevlError(f"{self.images}: --images is for a FineCapEval CSV --ann, not a world folder")


@dataclass
class VqaEvalConfig(PlacedModel):
    """Exact-match accuracy per question family on normalised answers (+ description facts)."""

    model: Path = field(default=Path(), metadata={"help": "A LLaVA-family model folder.", "required": True})
    data: Path | None = field(
        default=None, metadata={"help": "A FineShapes world (its VQA families + descriptions)."}
    )
    questions: Path | None = field(
        default=None, metadata={"help": "LLaVA-style question JSONL (instead of --data)."}
    )
    images: Path | None = field(default=None, metadata={"help": "Folder of the questions' images."})
    split: str = field(default="test", metadata={"help": "Split of --data."})
    limit: int | None = field(default=None, metadata={"help": "First N images of the split."})
    answers: Path | None = field(default=None, metadata={"help": "Write answers (LLaVA JSONL)."})
    label: str | None = field(
        default=None, metadata={"help": "Row name in reports (default: from the path)."}
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer."})
    out: Path | None = field(default=None, metadata={"help": "Also write the JSON results here."})

    def __post_init__(self) -> None:
        if (self.data is None) == (self.questions is None):
            raise FinevlError("give either --data (a world) or --questions (with --images)")
        if self.max_new_tokens < 1:
            raise FinevlError("--max-new-tokens must be >= 1")


@dataclass
class RegionAskConfig(PlacedModel):
    """Ask one question about regions of an image, each given as a mask."""

    model: Path = field(default=Path(), metadata={"help": "Region model folder.", "required": True})
    image: Path = field(default=Path(), metadata={"help": "The image.", "required": True})
    mask: list[Path] = field(
        default_factory=list, metadata={"help": "A mask image (non-zero = inside); repeat.", "required": True}
    )
    question: str = field(
        default="",
        metadata={"help": "Names masks as <region1>, <region2>, ... (or <mask><pos>).", "required": True},
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer."})
