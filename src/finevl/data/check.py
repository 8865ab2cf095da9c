"""`check_dataset`: validate a dataset folder end to end before anything trains on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finevl.data.coco import CocoCaptions, CocoImage, CocoInstances
from finevl.data.formats import read_finecap, read_regions
from finevl.data.images import ImageLoader
from finevl.data.jsonio import iter_jsonl
from finevl.data.tokenizer import check_caption, load_tokenizer
from finevl.errors import FinevlError


def _check_images(folder: Path, images: dict[int, CocoImage], loader: ImageLoader, source: Path) -> int:
    """Load every image once; a missing one is an error naming its record."""
    ok = 0
    for img in images.values():
        path = folder / "images" / img.file_name
        if not path.is_file():
            raise FinevlError(f"{source}: image {img.id}: file {path} not found")
        loaded = loader(path)
        if loaded is None:
            continue
        if loaded.size != (img.width, img.height):
            raise FinevlError(
                f"{path}: is {loaded.width}x{loaded.height} but {source} says {img.width}x{img.height}"
            )
        ok += 1
    return ok


def check_dataset(
    folder: str | Path, loader: ImageLoader | None = None, tokenizer: str | Path | None = None
) -> dict[str, Any]:
    """Validate every file a dataset folder has; counts out, or a `FinevlError` at the
    first problem (a bad image is skipped and counted instead when the loader says so)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FinevlError(f"{folder}: not a folder")
    loader = loader or ImageLoader()
    report: dict[str, Any] = {"folder": str(folder)}
    images: dict[int, CocoImage] = {}
    source = folder
    if (folder / "instances.json").exists():
        inst = CocoInstances(folder / "instances.json")
        report["instances"] = sum(len(v) for v in inst.annotations.values())
        for anns in inst.annotations.values():
            for ann in anns:
                inst.mask(ann)
        images, source = inst.images, inst.path
    if (folder / "captions.json").exists():
        caps = CocoCaptions(folder / "captions.json")
        report["captions"] = sum(len(v) for v in caps.captions.values())
        if tokenizer is not None:
            tok = load_tokenizer(tokenizer)
            for image_id, texts in caps.captions.items():
                for k, text in enumerate(texts):
                    check_caption(tok, text, f"{caps.path}: image {image_id}, caption {k}")
        images, source = images or caps.images, source if images else caps.path
    if (folder / "finecap.json").exists():
        report["finecap"] = len(read_finecap(folder / "finecap.json"))
    if (folder / "regions.json").exists():
        report["regions"] = len(read_regions(folder / "regions.json"))
    if (folder / "vqa.jsonl").exists():
        report["vqa"] = sum(1 for _ in iter_jsonl(folder / "vqa.jsonl"))
    if not images:
        raise FinevlError(f"{folder}: no instances.json or captions.json to check")
    report["images"] = _check_images(folder, images, loader, source)
    report["skipped_images"] = len(loader.skipped)
    report["skipped"] = loader.skipped
    return report
