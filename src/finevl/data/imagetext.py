"""In-memory image-text sets for training and evaluation, and caption sampling at varying
detail.

Small worlds fit in memory (20,000 images at 64 px are 250 MB as uint8), which keeps two
CPU cores busy with the model instead of PNG decoding. `ImageTextSet` reads a FineShapes (or
any COCO captions + finecap) folder, WebDataset shards, or JSONL image-text pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from finevl.data.coco import CocoCaptions
from finevl.data.formats import FinecapRecord, in_split, read_finecap, read_pairs
from finevl.data.images import ImageLoader, model_array
from finevl.errors import FinevlError


@dataclass
class ImageTextSet:
    """Images as a (N, 3, S, S) uint8 tensor, with each image's references and, where the
    data has them, its fine caption record (facts and phrases by criterion)."""

    images: torch.Tensor
    image_ids: list[int]
    file_names: list[str]
    refs: list[list[str]]
    fine: list[FinecapRecord | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_ids)

    @classmethod
    def from_rows(
        cls, rows: list[tuple[int, str, Image.Image | None, list[str], FinecapRecord | None]], side: int
    ) -> ImageTextSet:
        """(id, file name, image or None when unreadable, references, fine record) rows, the
        images resized to `side`; unreadable ones dropped."""
        kept = [r for r in rows if r[2] is not None]
        if not kept:
            raise FinevlError("no readable images in the data")
        images = (
            torch.from_numpy(np.stack([model_array(r[2], side) for r in kept]))
            .permute(0, 3, 1, 2)
            .contiguous()
        )
        return cls(
            images, [r[0] for r in kept], [r[1] for r in kept], [r[3] for r in kept], [r[4] for r in kept]
        )

    @classmethod
    def concat(cls, parts: list[ImageTextSet]) -> ImageTextSet:
        """Several sets as one, in order (image ids stay their sources' own)."""
        if not parts:
            raise FinevlError("no data sources")
        return cls(
            torch.cat([p.images for p in parts]),
            [i for p in parts for i in p.image_ids],
            [f for p in parts for f in p.file_names],
            [r for p in parts for r in p.refs],
            [f for p in parts for f in p.fine],
        )

    @classmethod
    def from_world(
        cls,
        folder: str | Path,
        side: int,
        split: str | None = None,
        loader: ImageLoader | None = None,
        limit: int | None = None,
    ) -> ImageTextSet:
        """A COCO-captions folder (`captions.json`, `images/`, optional `finecap.json` and
        `splits.json`), one split of it or all."""
        folder, loader = Path(folder), loader or ImageLoader()
        caps = CocoCaptions(folder / "captions.json")
        ids = in_split(folder, split, sorted(caps.images))
        ids = ids[:limit] if limit else ids
        fine = (
            {r.image_id: r for r in read_finecap(folder / "finecap.json")}
            if (folder / "finecap.json").exists()
            else {}
        )
        rows = []
        for i in ids:
            info = caps.images[i]
            path = folder / "images" / info.file_name
            if not path.is_file():
                raise FinevlError(f"{caps.path}: image {i}: file {path} not found")
            rows.append((i, info.file_name, loader(path), caps.captions.get(i, []), fine.get(i)))
        return cls.from_rows(rows, side)

    @classmethod
    def from_shards(cls, spec: str | Path, side: int, loader: ImageLoader | None = None) -> ImageTextSet:
        """WebDataset shards in the world's layout (`key.json` holds captions and finecap);
        shards of other datasets give one reference each, their `key.txt`."""
        from finevl.data.shards import iter_shards

        rows = []
        for k, s in enumerate(iter_shards(spec, loader)):
            meta = s["json"]
            refs = [c["caption"] for c in meta.get("captions", [])] or [s["text"]]
            fine = FinecapRecord.model_validate(meta["finecap"]) if "finecap" in meta else None
            rows.append((meta.get("image", {}).get("id", k), s["key"], s["image"], refs, fine))
        return cls.from_rows(rows, side)

    @classmethod
    def from_pairs(cls, path: str | Path, side: int, loader: ImageLoader | None = None) -> ImageTextSet:
        """JSONL image-text pairs; lines with the same image gather its references."""
        loader = loader or ImageLoader()
        by_image: dict[str, list[str]] = {}
        for pair in read_pairs(path):
            by_image.setdefault(pair.image, []).append(pair.text)
        if not by_image:
            raise FinevlError(f"{path}: no image-text pairs")
        rows = [(k, p, loader(p), texts, None) for k, (p, texts) in enumerate(by_image.items())]
        return cls.from_rows(rows, side)


def load_image_text(
    data: str | Path,
    side: int,
    split: str | None = None,
    loader: ImageLoader | None = None,
    limit: int | None = None,
) -> ImageTextSet:
    """Any supported source: a world folder, a shard folder or pattern, or a JSONL file;
    several joined by `::` (open_clip's `--train-data` convention) are concatenated, e.g. a
    one-object world mixed into the text stage of LiT."""
    if "::" in str(data):
        parts = [load_image_text(d, side, split, loader, limit) for d in str(data).split("::") if d]
        return ImageTextSet.concat(parts)
    path = Path(data)
    if path.is_dir() and (path / "captions.json").is_file():
        return ImageTextSet.from_world(path, side, split, loader, limit)
    if str(data).endswith(".jsonl"):
        return ImageTextSet.from_pairs(path, side, loader)
    if path.is_dir() or ".tar" in str(data):
        return ImageTextSet.from_shards(path / "shards" if (path / "shards").is_dir() else data, side, loader)
    raise FinevlError(f"{data}: not a dataset (a folder with captions.json, shards, or a .jsonl file)")


@dataclass
class CaptionSampler:
    """Captions at varying detail: the fine caption, a coarse reference, or a random subset
    of the fine caption's phrases (some objects, maybe the background and a relation)."""

    p_fine: float = 0.4
    p_coarse: float = 0.3

    def __call__(self, rng: random.Random, refs: list[str], fine: FinecapRecord | None) -> str:
        u = rng.random()
        if fine is None or (u >= self.p_fine and u < self.p_fine + self.p_coarse and refs):
            return rng.choice(refs) if refs else fine.caption  # type: ignore[union-attr]
        if u < self.p_fine:
            return fine.caption
        return self._subset(rng, fine)

    @staticmethod
    def _subset(rng: random.Random, fine: FinecapRecord) -> str:
        objects = fine.phrases.get("object", [])
        picked = rng.sample(objects, rng.randint(1, len(objects))) if objects else []
        text = " and ".join(picked) if picked else "some shapes"
        if fine.phrases.get("background") and rng.random() < 0.6:
            text += f" on {fine.phrases['background'][0]}"
        sentences = [text + "."]
        if fine.phrases.get("relation") and rng.random() < 0.5:
            sentences.append(rng.choice(fine.phrases["relation"]) + ".")
        return " ".join(s[0].upper() + s[1:] for s in sentences)
