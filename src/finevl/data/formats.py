"""The other annotation formats: FineCapEval-style fine captions (finevl's `finecap.json`
and FineCapEval's own CSV), JSONL image-text pairs, region descriptions, and plain image
folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from finevl.data.coco import json_list, validate_record
from finevl.data.jsonio import iter_jsonl, read_csv, read_json
from finevl.errors import FinevlError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class FinecapRecord(BaseModel):
    """One image's fine caption, its facts by criterion and FineCapEval-style phrases."""

    image_id: int
    file_name: str
    caption: str = Field(min_length=1)
    facts: dict[str, list[str]]
    phrases: dict[str, list[str]]
    scene: dict[str, Any] | None = None  # FineShapes: geometry to judge any fact later


class RegionRecord(BaseModel):
    """Descriptions of one instance (its `id` is the instance annotation's)."""

    id: int
    image_id: int
    category: str
    short: str = Field(min_length=1)
    detailed: str = Field(min_length=1)


class ImageTextPair(BaseModel):
    image: str
    text: str = Field(min_length=1)


def _annotations(path: str | Path, model: type[BaseModel]) -> list[Any]:
    path = Path(path)
    records = json_list(read_json(path), "annotations", path)
    return [validate_record(model, r, f"{path}: annotations[{k}]") for k, r in enumerate(records)]


def read_finecap(path: str | Path) -> list[FinecapRecord]:
    """Records of a `finecap.json` file, validated."""
    return _annotations(path, FinecapRecord)


FINECAPEVAL_COLUMNS = ("image", "caption", "background", "object", "relation")


def _finecapeval_id(name: str, row: int) -> int:
    digits = "".join(ch for ch in Path(name).stem.split("_")[-1] if ch.isdigit())
    return int(digits) if digits else row


def read_finecapeval_csv(path: str | Path) -> tuple[list[FinecapRecord], dict[int, list[str]]]:
    """FineCapEval's own CSV (columns image, caption, background, object, relation; phrases
    in a cell separated by `\\;`; several rows per image) as one finecap record per image,
    its phrases merged as upstream does, and every image's captions (the references of the
    whole-caption metrics). The image id is the number ending the file name
    (COCO_val2014_000000391895.jpg -> 391895), or the image's order of appearance when names
    carry none or two names share one."""
    path = Path(path)
    rows = read_csv(path)
    if not rows or any(c not in rows[0] for c in FINECAPEVAL_COLUMNS):
        raise FinevlError(f"{path}: a FineCapEval CSV needs the columns {', '.join(FINECAPEVAL_COLUMNS)}")
    by_image: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r)
    ids = [_finecapeval_id(name, k) for k, name in enumerate(by_image)]
    if len(set(ids)) < len(ids):
        ids = list(range(len(by_image)))
    records, captions = [], {}
    for image_id, (name, group) in zip(ids, by_image.items(), strict=True):
        phrases = {
            c: [p.strip() for r in group for p in (r[c] or "").split("\\;") if p.strip()]
            for c in FINECAPEVAL_COLUMNS[2:]
        }
        captions[image_id] = [r["caption"] for r in group if (r["caption"] or "").strip()]
        rec = {"image_id": image_id, "file_name": name, "caption": (captions[image_id] or [""])[0]}
        records.append(
            validate_record(FinecapRecord, {**rec, "facts": {}, "phrases": phrases}, f"{path}: {name}")
        )
    return records, captions


def read_regions(path: str | Path) -> list[RegionRecord]:
    """Records of a `regions.json` file, validated."""
    return _annotations(path, RegionRecord)


def read_pairs(path: str | Path) -> list[ImageTextPair]:
    """Image-text pairs from JSONL (`{"image": ..., "text": ...}`, or `caption` for text);
    relative image paths are resolved against the file's folder."""
    path = Path(path)
    pairs = []
    for lineno, rec in iter_jsonl(path):
        if "text" not in rec and "caption" in rec:
            rec = {**rec, "text": rec["caption"]}
        pair = validate_record(ImageTextPair, rec, f"{path}: line {lineno}")
        pair.image = str((path.parent / pair.image) if not Path(pair.image).is_absolute() else pair.image)
        pairs.append(pair)
    return pairs


def image_folder(root: str | Path) -> list[tuple[Path, str]]:
    """(image path, label) for every image under `root`, sorted; the label is the first
    sub-folder's name (as torchvision's ImageFolder), or '' for images at the top."""
    root = Path(root)
    if not root.is_dir():
        raise FinevlError(f"{root}: not a folder")
    out = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            rel = p.relative_to(root)
            out.append((p, rel.parts[0] if len(rel.parts) > 1 else ""))
    return out


def in_split(folder: str | Path, split: str | None, ids: list[int]) -> list[int]:
    """The ids of `ids` in one split of `folder/splits.json` (all of them for None)."""
    if split is None:
        return ids
    path = Path(folder) / "splits.json"
    splits = read_json(path)
    if not isinstance(splits, dict) or split not in splits:
        have = ", ".join(splits) if isinstance(splits, dict) else "none"
        raise FinevlError(f"{path}: no split {split!r} (have {have})")
    wanted = set(splits[split])
    return [i for i in ids if i in wanted]
