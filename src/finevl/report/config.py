"""Settings of the report commands (light to import: the CLI builds its flags from them).
Each class's docstring is its command's help."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class GalleryConfig:
    """Write an HTML gallery: images, masks overlaid, coarse and fine captions, facts."""

    world: Path = field(
        default=Path(), metadata={"help": "A generated world's folder.", "required": True, "argument": True}
    )
    out: Path | None = field(default=None, metadata={"help": "HTML file (default: WORLD/gallery.html)."})
    limit: int = field(default=48, metadata={"help": "Images to show."})
    split: str | None = field(default=None, metadata={"help": "Only this split (train, val, test)."})


@dataclass
class ReportConfig:
    """One HTML report from saved results: training curve, zero-shot, retrieval, captioning."""

    out: Path = field(default=Path(), metadata={"help": "HTML file to write.", "required": True})
    results: list[Path] = field(
        default_factory=list,
        metadata={"help": "Zero-shot, retrieval and finecap result JSON files.", "argument": True},
    )
    run: Path | None = field(default=None, metadata={"help": "A CLIP training run folder."})
    world: Path | None = field(
        default=None, metadata={"help": "The world the results came from (thumbnails)."}
    )
    gallery: str | None = field(default=None, metadata={"help": "Link to the world's gallery page."})
    caption_run: list[Path] = field(
        default_factory=list, metadata={"help": "Captioning runs whose curves to plot."}
    )
