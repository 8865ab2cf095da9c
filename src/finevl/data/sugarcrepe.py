"""SugarCrepe's compositionality pairs: one JSON file per category, each
`{id: {"filename", "caption", "negative_caption"}}`, images from a COCO val2017 folder.

`ComposePair` is also the record FineShapes' own compositional pairs are made in
(`finevl.world.compose`), so one evaluation (`finevl.eval.compose`) serves both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from finevl.data.jsonio import read_json
from finevl.errors import FinevlError

# SugarCrepe's seven categories, named as its files are (replace_obj.json, ...).
SUGARCREPE_CATEGORIES = (
    "replace_obj",
    "replace_att",
    "replace_rel",
    "swap_obj",
    "swap_att",
    "add_obj",
    "add_att",
)
FIELDS = ("filename", "caption", "negative_caption")


class ComposePair(NamedTuple):
    """One test: an image, a caption true of it, and a negative that differs by one change."""

    image: str  # path of the image file
    positive: str
    negative: str
    category: str


def _pair(entry: Any, where: str, images: Path, category: str) -> ComposePair:
    if not isinstance(entry, dict):
        raise FinevlError(f"{where}: expected an object with {', '.join(FIELDS)}")
    for key in FIELDS:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise FinevlError(f"{where}: missing or empty key {key!r}")
    return ComposePair(str(images / entry["filename"]), entry["caption"], entry["negative_caption"], category)


def read_category(path: str | Path, images: str | Path, category: str) -> list[ComposePair]:
    """The pairs of one category file, in the file's order; a file that is not a JSON
    object of pairs, an empty one or an entry lacking a field is a `FinevlError`."""
    path, images = Path(path), Path(images)
    data = read_json(path)
    if not isinstance(data, dict):
        raise FinevlError(f"{path}: expected a JSON object {{id: {{{', '.join(FIELDS)}}}}}")
    if not data:
        raise FinevlError(f"{path}: category {category!r} has no pairs")
    return [_pair(entry, f"{path}: {key}", images, category) for key, entry in data.items()]


def _check_images(pairs: list[ComposePair], images: Path) -> None:
    missing = sorted({p.image for p in pairs if not Path(p.image).is_file()})
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FinevlError(f"{missing[0]}: image file not found in {images}{more}")


def read_sugarcrepe(folder: str | Path, images: str | Path, limit: int | None = None) -> list[ComposePair]:
    """Every pair of the category files present in `folder` (at least one), the first
    `limit` of each category if given; every image must exist under `images`.

    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = Path(d, "a.png").write_bytes(b"")
    ...     entry = {"filename": "a.png", "caption": "a dog", "negative_caption": "a cat"}
    ...     _ = Path(d, "swap_att.json").write_text(json.dumps({"0": entry}))
    ...     [p.category for p in read_sugarcrepe(d, d)]
    ['swap_att']
    """
    folder, images = Path(folder), Path(images)
    if not folder.is_dir():
        raise FinevlError(f"{folder}: not a folder (SugarCrepe's category JSON files)")
    if not images.is_dir():
        raise FinevlError(f"{images}: not a folder (the COCO val2017 images)")
    present = [c for c in SUGARCREPE_CATEGORIES if (folder / f"{c}.json").exists()]
    if not present:
        names = ", ".join(f"{c}.json" for c in SUGARCREPE_CATEGORIES)
        raise FinevlError(f"{folder}: no SugarCrepe category file (expected one of {names})")
    pairs = []
    for category in present:
        pairs += read_category(folder / f"{category}.json", images, category)[:limit]
    _check_images(pairs, images)
    return pairs
