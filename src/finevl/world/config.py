"""`WorldConfig`: what world to generate (light to import: the CLI reads its fields)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from finevl.errors import FinevlError


@dataclass
class WorldConfig:
    """What world to generate: the same config always gives byte-identical files."""

    n: int = field(default=2000, metadata={"help": "Number of images."})
    size: int = field(default=96, metadata={"help": "Image side in pixels."})
    seed: int = field(default=0, metadata={"help": "World seed."})
    shards: int = field(
        default=0, metadata={"help": "Also write this many WebDataset shards per split (0: none)."}
    )
    max_objects: int = field(default=4, metadata={"help": "Most objects in one scene (1-4)."})
    overlap_prob: float = field(
        default=0.3, metadata={"help": "Share of scenes with two overlapping objects."}
    )
    text_prob: float = field(default=0.25, metadata={"help": "Share of scenes with rendered text."})
    val_frac: float = field(default=0.1, metadata={"help": "Share of images in the val split."})
    test_frac: float = field(default=0.1, metadata={"help": "Share of images in the test split."})

    def __post_init__(self) -> None:
        checks = [
            (self.n >= 1, f"--n must be at least 1, not {self.n}"),
            (48 <= self.size <= 1024, f"--size must be between 48 and 1024, not {self.size}"),
            (self.shards >= 0, f"--shards must be 0 or more, not {self.shards}"),
            (1 <= self.max_objects <= 4, f"--max-objects must be 1 to 4, not {self.max_objects}"),
            (0 <= self.overlap_prob <= 1 and 0 <= self.text_prob <= 1, "probabilities must lie in [0, 1]"),
            (
                self.val_frac >= 0 and self.test_frac >= 0 and self.val_frac + self.test_frac < 1,
                "--val-frac and --test-frac must be non-negative and sum below 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise FinevlError(message)

    def scene_options(self) -> dict[str, Any]:
        return {
            "max_objects": self.max_objects,
            "overlap_prob": self.overlap_prob,
            "text_prob": self.text_prob,
        }


@dataclass
class GenerateConfig(WorldConfig):
    """Generate a FineShapes world: images, COCO files, fine captions, regions, VQA, splits."""

    out: str = field(default="", metadata={"help": "Folder to write the world into.", "required": True})
    workers: int = field(default=0, metadata={"help": "Worker processes (default: all cores)."})

    def world(self) -> WorldConfig:
        """The world's own settings (what `world.json` records)."""
        return WorldConfig(**{k: v for k, v in vars(self).items() if k not in ("out", "workers")})
