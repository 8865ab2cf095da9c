"""`check_dataset`: validate a dataset folder end to end before anything trains on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from finevl.data.coco import CocoCaptions, CocoImage, CocoInstances
from finevl.data.config import CheckConfig
from finevl.data.formats import read_finecap, read_regions
from finevl.data.images import ImageLoader
from finevl.data.jsonio import iter_jsonl, read_json
from finevl.data.tokenizer import check_caption, load_tokenizer
from finevl.errors import FinevlError


def _check_images(folder: Path, images: dict[int, CocoImage], loader: ImageLoader, source: Path) -> int:
    """Load every image once: a missing or unreadable one is an error naming its record,
    or a counted skip under the loader's 'skip' policy."""
    ok = 0
    for img in images.values():
        path = folder / "images" / img.file_name
        where = f"{path} (image {img.id} of {source.name})"
        if not path.is_file():
            if loader.on_bad_image == "error":
                raise FinevlError(f"{source}: image {img.id}: file {path} not found")
            loader.skipped.append(f"{where}: file not found")
            continue
        loaded = loader(path, name=where)
        if loaded is None:
            continue
        if loaded.size != (img.width, img.height):
            raise FinevlError(
                f"{where}: is {loaded.width}x{loaded.height}, the record says {img.width}x{img.height}"
            )
        ok += 1
    return ok


def _check_instances(inst: CocoInstances) -> int:
    """Decode every mask; its area and box must be the mask's own."""
    n = 0
    for anns in inst.annotations.values():
        for ann in anns:
            mask = inst.mask(ann)
            where = f"{inst.path}: annotation {ann.id} (image {ann.image_id})"
            if abs(int(mask.sum()) - ann.area) > max(1.0, 0.01 * ann.area):
                raise FinevlError(f"{where}: area {ann.area} but the mask has {int(mask.sum())} pixels")
            if mask.any() and not ann.iscrowd:
                ys, xs = np.nonzero(mask)
                box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                if max(abs(a - b) for a, b in zip(box, ann.bbox, strict=True)) > 1:
                    raise FinevlError(f"{where}: bbox {ann.bbox} but the mask spans {[int(v) for v in box]}")
            n += 1
    return n


def _check_splits(path: Path, images: dict[int, CocoImage]) -> dict[str, int]:
    splits = read_json(path)
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise FinevlError(f"{path}: expected {{split name: [image ids]}}")
    for name, ids in splits.items():
        unknown = [i for i in ids if i not in images]
        if unknown:
            raise FinevlError(f"{path}: split {name!r} has unknown image id {unknown[0]!r}")
    return {name: len(ids) for name, ids in splits.items()}


def _texts(folder: Path, report: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, text) of every caption-like text, counting each file's records."""
    texts: list[tuple[str, str]] = []
    if (folder / "captions.json").exists():
        caps = CocoCaptions(folder / "captions.json")
        report["captions"] = sum(len(v) for v in caps.captions.values())
        texts += [
            (f"{caps.path}: image {i}, caption {k}", t)
            for i, ts in caps.captions.items()
            for k, t in enumerate(ts)
        ]
    if (folder / "finecap.json").exists():
        fine = read_finecap(folder / "finecap.json")
        report["finecap"] = len(fine)
        texts += [(f"{folder / 'finecap.json'}: image {r.image_id}", r.caption) for r in fine]
    if (folder / "regions.json").exists():
        regions = read_regions(folder / "regions.json")
        report["regions"] = len(regions)
        texts += [(f"{folder / 'regions.json'}: region {r.id}", r.detailed) for r in regions]
    return texts


def check_dataset(
    folder: str | Path, loader: ImageLoader | None = None, tokenizer: str | Path | None = None
) -> dict[str, Any]:
    """Validate every file a dataset folder has; counts out, or a `FinevlError` at the
    first problem (a bad or missing image is skipped and counted instead when the loader
    says so). Nothing is written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FinevlError(f"{folder}: not a folder")
    loader = loader or ImageLoader()
    report: dict[str, Any] = {"folder": str(folder)}
    images: dict[int, CocoImage] = {}
    source = folder
    if (folder / "instances.json").exists():
        inst = CocoInstances(folder / "instances.json")
        report["instances"] = _check_instances(inst)
        images, source = inst.images, inst.path
    texts = _texts(folder, report)
    if not images and (folder / "captions.json").exists():
        caps = CocoCaptions(folder / "captions.json")
        images, source = caps.images, caps.path
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        for where, text in texts:
            check_caption(tok, text, where)
    if (folder / "vqa.jsonl").exists():
        report["vqa"] = sum(1 for _ in iter_jsonl(folder / "vqa.jsonl"))
    if not images:
        raise FinevlError(f"{folder}: no instances.json or captions.json to check")
    if (folder / "splits.json").exists():
        report["splits"] = _check_splits(folder / "splits.json", images)
    report["images"] = _check_images(folder, images, loader, source)
    report["skipped_images"] = len(loader.skipped)
    report["skipped"] = loader.skipped
    return report


def check_command(cfg: CheckConfig) -> dict[str, Any]:
    """`finevl data check`: `check_dataset` with the command's settings."""
    return check_dataset(cfg.folder, ImageLoader(cfg.on_bad_image), cfg.tokenizer)  # type: ignore[arg-type]
