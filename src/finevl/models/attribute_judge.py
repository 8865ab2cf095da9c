"""An attribute judge for FineShapes edits: a small CNN that reads an object's colour and
pattern from its masked crop and the background from the whole image. It never sees CLIP,
so an edit that fools CLIP without changing the pixels' attributes does not fool it.

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
from finevl.models.clip import check_safetensors

CROP = 32  # side of the object crop and of the scene view
HEADS = {"color": "object", "pattern": "object", "background": "scene"}


def _tower() -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in ((3, 32), (32, 64), (64, 64)):
        layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def object_crop(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(3, CROP, CROP): the object's bounding box of `pixels` (3, H, W) in [0, 1], the
    pixels outside its mask set to zero, resized."""
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    if len(rows) == 0:
        raise FinevlError("an empty mask has no object to judge")
    box = (pixels * mask)[:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return F.interpolate(box[None], size=(CROP, CROP), mode="bilinear", antialias=True)[0]


def scene_view(pixels: torch.Tensor) -> torch.Tensor:
    """(3, CROP, CROP): the whole image, resized."""
    return F.interpolate(pixels[None], size=(CROP, CROP), mode="bilinear", antialias=True)[0]


class AttributeJudge(nn.Module):
    """Colour and pattern of an object (its masked crop), background of the scene."""

    def __init__(self, labels: dict[str, list[str]]):
        super().__init__()
        self.labels = labels
        self.object_tower, self.scene_tower = _tower(), _tower()
        self.heads = nn.ModuleDict({name: nn.Linear(64, len(labels[name])) for name in HEADS})

    def forward(self, crops: torch.Tensor, scenes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per head for (B, 3, CROP, CROP) object crops and scene views."""
        feats = {"object": self.object_tower(crops), "scene": self.scene_tower(scenes)}
        return {name: self.heads[name](feats[part]) for name, part in HEADS.items()}

    @torch.no_grad()
    def judge(self, pixels: torch.Tensor, mask: np.ndarray) -> dict[str, str]:
        """The attributes it reads from one image (3, H, W) in [0, 1] and an object's mask."""
        self.eval()
        crop = object_crop(pixels, torch.from_numpy(mask))
        logits = self(crop[None], scene_view(pixels)[None])
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
    judge = AttributeJudge(json.loads((path / "judge_config.json").read_text(encoding="utf-8"))["labels"])
    judge.load_state_dict(load_file(path / "judge.safetensors"))
    return judge.eval()
