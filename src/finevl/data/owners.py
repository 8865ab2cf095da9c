"""Which object owns each pixel, from a world's exact instance masks: the targets of dense
supervision (each cell of a stage map names the object covering it) and of the probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from finevl.data.coco import CocoInstances
from finevl.data.formats import in_split
from finevl.errors import FinevlError


def owner_maps(
    data: str | Path, side: int, split: str | None = None, limit: int | None = None
) -> torch.Tensor:
    """(N, side, side) int8 maps of the images `load_image_text(data, side, split, limit=limit)`
    returns, in its order: -1 for background, k for the scene's k-th object (its visible
    pixels). Every source (`A::B`) must be a world with `instances.json`."""
    return torch.cat([_world_owners(d, side, split, limit) for d in _sources(data)])


def check_owner_sources(data: str | Path) -> None:
    """One error line, before anything is written, when a source of `data` has no masks."""
    for d in _sources(data):
        if not (d / "instances.json").is_file():
            raise FinevlError(
                f"{d}: dense and relation supervision need a world with object masks (no instances.json)"
            )


def _sources(data: str | Path) -> list[Path]:
    """The worlds of `A::B` (open_clip's `--train-data` convention, as `load_image_text`)."""
    return [Path(d) for d in str(data).split("::") if d]


def _world_owners(folder: Path, side: int, split: str | None, limit: int | None) -> torch.Tensor:
    check_owner_sources(folder)
    instances = CocoInstances(folder / "instances.json")
    ids = in_split(folder, split, sorted(instances.images))
    ids = ids[:limit] if limit else ids
    maps = []
    for i in ids:
        img = instances.images[i]
        owner = np.full((img.height, img.width), -1, dtype=np.int8)
        for k, ann in enumerate(sorted(instances.annotations[i], key=lambda a: a.id)):  # scene order
            owner[instances.mask(ann)] = k
        maps.append(torch.from_numpy(owner))
    if not maps:
        raise FinevlError(f"{folder}: no images in split {split!r}")
    stacked = torch.stack(maps)
    if stacked.shape[-1] != side:
        stacked = F.interpolate(stacked[:, None].float(), size=(side, side), mode="nearest")[:, 0].to(
            torch.int8
        )
    return stacked


def cell_owners(owners: torch.Tensor, cells: int, objects: int, chunk: int = 512) -> torch.Tensor:
    """(N, cells, cells) int64: the owner (-1 background) of most of each cell's pixels
    (in chunks of images: a whole world's one-hot maps would take gigabytes)."""
    out = []
    for part in owners.split(chunk):
        onehot = F.one_hot(part.long() + 1, objects + 1).permute(0, 3, 1, 2).float()
        out.append(F.adaptive_avg_pool2d(onehot, cells).argmax(1) - 1)
    return torch.cat(out)
