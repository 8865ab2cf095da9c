"""Region instruction data in Osprey-724K's format, and its masks (pycocotools).

A file is a JSON list of records: `file_name`, `height`, `width`, `annotation` (a list, each
with a COCO `segmentation`, polygon or RLE) and `conversations` (`{from: human|gpt, value}`),
where a human turn names region N of the annotation list as `<regionN>` (1-based). Reading
turns every human/gpt pair into one `RegionTurn` whose question writes each region as
`<mask><pos>`, the masks listed in the order the question names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from finevl.data.coco import decode_segmentation, validate_record
from finevl.data.jsonio import read_json, write_json_atomic
from finevl.errors import FinevlError

REGION_REF = re.compile(r"<region(\d+)>")
MASK_TOKEN, POS_TOKEN = "<mask>", "<pos>"
MASK_PAIR = MASK_TOKEN + POS_TOKEN  # how a region is written in a model's prompt


class OspreyMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    sender: Literal["human", "gpt"] = Field(alias="from")
    value: str


class OspreyAnnotation(BaseModel):
    model_config = ConfigDict(extra="allow")
    segmentation: dict[str, Any] | list[list[float]]


class OspreyRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    file_name: str
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    annotation: list[OspreyAnnotation]
    conversations: list[OspreyMessage] = Field(min_length=2)
    description: list[str] | None = None


@dataclass
class RegionTurn:
    """One question about an image's regions and its answer. `segmentations` are COCO
    segmentations of the image (`size` = (width, height)) in the question's order."""

    image: str
    size: tuple[int, int]
    segmentations: list[Any]
    question: str
    answer: str
    kind: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def masks(self) -> list[np.ndarray]:
        width, height = self.size
        return [
            decode_segmentation(s, height, width, f"{self.image}: region {k + 1}")
            for k, s in enumerate(self.segmentations)
        ]


def resolve_regions(text: str, available: int, where: str = "") -> tuple[str, list[int]]:
    """(`text` with each `<regionN>` written `<mask><pos>`, the 0-based region of each
    pair in order). Text already written with `<mask><pos>` names regions 1, 2, ... in order."""
    refs = [int(n) - 1 for n in REGION_REF.findall(text)] or list(range(text.count(MASK_PAIR)))
    for n in refs:
        if not 0 <= n < available:
            raise FinevlError(f"{where}: the text names region {n + 1} but {available} masks are given")
    return REGION_REF.sub(MASK_PAIR, text), refs


def read_mask_png(path: str | Path) -> np.ndarray:
    """A boolean mask from an image file: any non-zero pixel is inside."""
    from finevl.data.images import load_image

    return np.asarray(load_image(path).convert("L")) > 0


def record_turns(record: OspreyRecord, where: str = "") -> list[RegionTurn]:
    """The record's human/gpt pairs as turns (`<image>` dropped: every turn sees the image)."""
    turns = []
    messages = record.conversations
    if len(messages) % 2:
        raise FinevlError(f"{where}: conversations must alternate human, gpt and end with gpt")
    for k in range(0, len(messages), 2):
        human, gpt = messages[k], messages[k + 1]
        if human.sender != "human" or gpt.sender != "gpt":
            raise FinevlError(f"{where}: conversations must alternate human, gpt")
        question, refs = resolve_regions(
            human.value.replace("<image>", "").strip(), len(record.annotation), where
        )
        turns.append(
            RegionTurn(
                image=record.file_name,
                size=(record.width, record.height),
                segmentations=[record.annotation[n].segmentation for n in refs],
                question=question,
                answer=gpt.value,
                kind=str((record.model_extra or {}).get("task", "")),
            )
        )
    return turns


def read_osprey(path: str | Path) -> list[RegionTurn]:
    """Every turn of an Osprey-format JSON file, validated (one error line on bad input)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise FinevlError(f"{path}: not an Osprey file (a JSON list of records)")
    turns = []
    for k, raw in enumerate(data):
        record = validate_record(OspreyRecord, raw, f"{path}: [{k}]")
        turns += record_turns(record, f"{path}: [{k}]")
    return turns


def write_osprey(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write records (validated first, so what is written reads back)."""
    for k, raw in enumerate(records):
        validate_record(OspreyRecord, raw, f"record {k}")
    write_json_atomic(path, records)


def osprey_record(
    file_name: str,
    size: tuple[int, int],
    segmentations: list[Any],
    pairs: list[tuple[str, str]],
    task: str = "",
) -> dict[str, Any]:
    """A record from questions that name regions as `<regionN>` and their answers (`task`,
    an extra field, names the kind of data)."""
    conversations = []
    for k, (question, answer) in enumerate(pairs):
        conversations.append({"from": "human", "value": ("<image>\n" if k == 0 else "") + question})
        conversations.append({"from": "gpt", "value": answer})
    return {
        "file_name": file_name,
        "width": size[0],
        "height": size[1],
        "annotation": [{"segmentation": s} for s in segmentations],
        "conversations": conversations,
        **({"task": task} if task else {}),
    }
