"""An attribute judge for FineShapes edits: a small CNN that reads an object's colour and
pattern from its masked crop, its size from a fixed-scale window around it, and the
background from the whole image. It never sees CLIP, so an edit that fools CLIP without
changing the pixels' attributes does not fool it.

A folder holds `judge_config.json` (the label lists) and `judge.safetensors`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finevl.data.files import replace_dir, temp_sibling
from finevl.errors import FinevlError
from finevl.models.auto import Pretrained
from finevl.models.clip import check_safetensors

CROP = 32  # side of every view the judge reads
CONTEXT = 0.5  # the size window's side, a fraction of the image side (a large object fits)
HEADS = {"color": "object", "pattern": "object", "size": "context", "background": "scene"}
VIEWS = ("object", "context", "scene")


def _tower() -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in ((3, 32), (32, 64), (64, 64)):
        layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    if len(rows) == 0:
        raise FinevlError("an empty mask has no object to judge")
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def _resize(pixels: torch.Tensor) -> torch.Tensor:
    return F.interpolate(pixels[None], size=(CROP, CROP), mode="bilinear", antialias=True)[0]


def object_crop(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(3, CROP, CROP): the object's bounding box of `pixels` (3, H, W) in [0, 1], the
    pixels outside its mask set to zero, resized (its size is lost: colour and pattern)."""
    y0, y1, x0, x1 = _box(mask)
    return _resize((pixels * mask)[:, y0:y1, x0:x1])


def context_window(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(3, CROP, CROP): a window of CONTEXT x the image side centred on the object's box,
    zero beyond the image. Its scale is fixed, so the object's size shows, and an edit that
    grows the object beyond its mask is seen."""
    y0, y1, x0, x1 = _box(mask)
    half = round(CONTEXT * pixels.shape[-1] / 2)
    padded = F.pad(pixels, (half, half, half, half))
    cy, cx = (y0 + y1) // 2 + half, (x0 + x1) // 2 + half
    return _resize(padded[:, cy - half : cy + half, cx - half : cx + half])


def judge_views(pixels: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three views of one image (3, H, W) in [0, 1] and an object's (H, W) mask."""
    pixels = pixels.float()
    return {
        "object": object_crop(pixels, mask),
        "context": context_window(pixels, mask),
        "scene": _resize(pixels),
    }


class AttributeJudge(Pretrained, nn.Module):
    """Colour and pattern of an object, its size, and the background of the scene."""

    def __init__(self, labels: dict[str, list[str]]):
        super().__init__()
        self.labels = labels
        self.towers = nn.ModuleDict({view: _tower() for view in VIEWS})
        self.heads = nn.ModuleDict({name: nn.Linear(64, len(labels[name])) for name in HEADS})

    def forward(self, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits per head for batches of (B, 3, CROP, CROP) views (`judge_views`)."""
        feats = {view: tower(views[view]) for view, tower in self.towers.items()}
        return {name: self.heads[name](feats[view]) for name, view in HEADS.items()}

    @torch.no_grad()
    def judge(self, pixels: torch.Tensor, mask: np.ndarray) -> dict[str, str]:
        """The attributes it reads from one image (3, H, W) in [0, 1] and an object's mask."""
        self.eval()
        views = judge_views(pixels, torch.from_numpy(mask))
        logits = self({k: v[None] for k, v in views.items()})
        return {name: self.labels[name][int(out.argmax())] for name, out in logits.items()}

    def save(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        tmp = temp_sibling(out)
        (tmp / "judge_config.json").write_text(json.dumps({"labels": self.labels}), encoding="utf-8")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, tmp / "judge.safetensors")
        replace_dir(tmp, out)
        return out


def load_attribute_judge(path: str | Path) -> AttributeJudge:
    """A judge folder written by `AttributeJudge.save`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "judge_config.json").is_file() or not (path / "judge.safetensors").is_file():
        raise FinevlError(f"{path}: not an attribute-judge folder")
    check_safetensors(path / "judge.safetensors")
    labels = json.loads((path / "judge_config.json").read_text(encoding="utf-8")).get("labels", {})
    if set(labels) != set(HEADS):
        raise FinevlError(f"{path}: the judge's labels are {sorted(labels)}, not {sorted(HEADS)}")
    judge = AttributeJudge(labels)
    try:
        judge.load_state_dict(load_file(path / "judge.safetensors"))
    except RuntimeError as err:
        raise FinevlError(f"{path}: the weights do not fit this judge ({str(err).splitlines()[0]})") from None
    return judge.eval()
