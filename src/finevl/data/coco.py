"""COCO captions and instances: validated readers and the RLE mask helpers (pycocotools)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pydantic import BaseModel, Field, ValidationError

from finevl.data.jsonio import read_json
from finevl.errors import FinevlError


class CocoImage(BaseModel):
    id: int
    file_name: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class CocoCaption(BaseModel):
    id: int
    image_id: int
    caption: str


class CocoCategory(BaseModel):
    id: int
    name: str
    supercategory: str = ""


class CocoInstance(BaseModel):
    id: int
    image_id: int
    category_id: int
    segmentation: dict[str, Any] | list[list[float]]
    area: float = Field(ge=0)
    bbox: list[float] = Field(min_length=4, max_length=4)
    iscrowd: int = 0
    attributes: dict[str, Any] = Field(default_factory=dict)


def validate_record(model: type[BaseModel], record: Any, where: str) -> Any:
    try:
        return model.model_validate(record)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        raise FinevlError(f"{where}: {loc}: {err['msg']}") from None


def json_list(data: Any, key: str, path: Path) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise FinevlError(f"{path}: not a COCO file (no '{key}' list)")
    return data[key]


def _images(data: Any, path: Path) -> dict[int, CocoImage]:
    images = {}
    for k, rec in enumerate(json_list(data, "images", path)):
        img = validate_record(CocoImage, rec, f"{path}: images[{k}]")
        images[img.id] = img
    return images


def encode_masks(masks: list[np.ndarray]) -> list[dict[str, Any]]:
    """Boolean (H, W) masks to COCO compressed RLE dicts with string counts."""
    if not masks:
        return []
    stack = np.asfortranarray(np.stack(masks, axis=-1).astype(np.uint8))
    rles = mask_utils.encode(stack)
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def rle_area_bbox(rles: list[dict[str, Any]]) -> tuple[list[int], list[list[float]]]:
    """Areas and [x, y, w, h] boxes of RLE masks, as pycocotools computes them."""
    coded = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in rles]
    return [int(a) for a in mask_utils.area(coded)], [[float(v) for v in b] for b in mask_utils.toBbox(coded)]


def decode_segmentation(
    seg: dict[str, Any] | list[list[float]], height: int, width: int, where: str
) -> np.ndarray:
    """A COCO segmentation (RLE, uncompressed RLE or polygons) to a boolean (H, W) mask.

    A mask whose size differs from its image's, or that does not decode, is a
    `FinevlError` naming `where`.
    """
    if isinstance(seg, dict):
        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2):
            raise FinevlError(f"{where}: segmentation has no [height, width] size")
        if list(size) != [height, width]:
            raise FinevlError(f"{where}: mask is {size[0]}x{size[1]} but its image is {height}x{width}")
        counts = seg.get("counts")
        if isinstance(counts, list) and sum(counts) != height * width:
            raise FinevlError(f"{where}: RLE counts cover {sum(counts)} pixels, not {height * width}")
    try:
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        return mask_utils.decode(rle).astype(bool)
    except Exception as e:  # pycocotools raises bare Exceptions on bad input
        raise FinevlError(f"{where}: undecodable segmentation ({type(e).__name__}: {e})") from None


class CocoCaptions:
    """A COCO captions file: `images` by id and each image's `captions`.

    Empty captions are refused with the record named.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        data = read_json(self.path)
        self.images = _images(data, self.path)
        self.captions: dict[int, list[str]] = defaultdict(list)
        for k, rec in enumerate(json_list(data, "annotations", self.path)):
            ann = validate_record(CocoCaption, rec, f"{self.path}: annotations[{k}]")
            if ann.image_id not in self.images:
                raise FinevlError(f"{self.path}: annotations[{k}]: unknown image_id {ann.image_id}")
            if not ann.caption.strip():
                raise FinevlError(f"{self.path}: annotations[{k}] (id {ann.id}): empty caption")
            self.captions[ann.image_id].append(ann.caption)

    def __len__(self) -> int:
        return len(self.images)


class CocoInstances:
    """A COCO instances file: images, categories and per-image instance annotations."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        data = read_json(self.path)
        self.images = _images(data, self.path)
        self.categories = {
            c.id: c
            for k, rec in enumerate(json_list(data, "categories", self.path))
            if (c := validate_record(CocoCategory, rec, f"{self.path}: categories[{k}]"))
        }
        self.annotations: dict[int, list[CocoInstance]] = defaultdict(list)
        for k, rec in enumerate(json_list(data, "annotations", self.path)):
            ann = validate_record(CocoInstance, rec, f"{self.path}: annotations[{k}]")
            if ann.image_id not in self.images:
                raise FinevlError(f"{self.path}: annotations[{k}]: unknown image_id {ann.image_id}")
            if ann.category_id not in self.categories:
                raise FinevlError(f"{self.path}: annotations[{k}]: unknown category_id {ann.category_id}")
            self.annotations[ann.image_id].append(ann)

    def mask(self, ann: CocoInstance) -> np.ndarray:
        """The boolean mask of an annotation, checked against its image's size."""
        img = self.images[ann.image_id]
        return decode_segmentation(
            ann.segmentation, img.height, img.width, f"{self.path}: annotation {ann.id} (image {img.id})"
        )
