"""Settings of the dataset commands (light to import: the CLI builds its flags from them).
Each class's docstring is its command's help."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CheckConfig:
    """Validate a dataset: every record, mask and image; JSON counts out."""

    folder: Path = field(
        default=Path(),
        metadata={
            "help": "A dataset folder (COCO files, finecap.json, images/).",
            "required": True,
            "argument": True,
        },
    )
    on_bad_image: str = field(
        default="error", metadata={"help": "'error' stops at a bad image; 'skip' counts and skips it."}
    )
    tokenizer: Path | None = field(default=None, metadata={"help": "Also check caption lengths against it."})


@dataclass
class TokenizerConfig:
    """Train a word-level tokenizer on a dataset's text; saved as PreTrainedTokenizerFast."""

    folder: Path = field(
        default=Path(),
        metadata={"help": "A dataset folder whose text to learn.", "required": True, "argument": True},
    )
    out: Path = field(default=Path(), metadata={"help": "Folder for the tokenizer.", "required": True})
    max_length: int = field(default=128, metadata={"help": "Longest text, in tokens."})
