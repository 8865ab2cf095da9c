"""The model contract: every finevl model saves to a folder (`save_pretrained`) and comes back
from it (`from_pretrained`), and `load_model(path)` reads any such folder's own files and
returns the right kind, as transformers' `AutoModel` reads a folder's config.

| kind | class | the folder's mark |
|---|---|---|
| `region` | `RegionLvlm` | `region_config.json` |
| `judge` | `AttributeJudge` | `judge_config.json` |
| `grammar` | `GrammarModel` | `grammar_head.safetensors` (its CLIP in `clip/`) |
| `clip` | `Clip` (`OpenClip`, `HfClip`) | `open_clip_config.json`, or `config.json` of `model_type` clip |
| `captioner` | `CaptionerBundle` | `config.json` of `model_type` finevl-captioner |
| `lvlm` | `Lvlm` | `config.json` of a LLaVA `model_type` |

A CLIP tower trained with an attribute head (`finevl clip tower`) is a CLIP folder: it loads
as its CLIP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from finevl.errors import FinevlError

LLAVA_TYPES = ("llava", "llava_next", "llava_onevision")


def model_kind(path: str | Path) -> str:
    """Which kind of finevl model a folder holds (see the module table)."""
    path = Path(path)
    if not path.is_dir():
        raise FinevlError(f"{path}: model directory not found")
    for kind, mark in (("region", "region_config.json"), ("judge", "judge_config.json")):
        if (path / mark).is_file():
            return kind
    if (path / "grammar_head.safetensors").is_file():
        return "grammar"
    if (path / "open_clip_config.json").is_file():
        return "clip"
    model_type = _model_type(path / "config.json")
    if model_type == "clip":
        return "clip"
    if model_type == "finevl-captioner":
        return "captioner"
    if model_type in LLAVA_TYPES:
        return "lvlm"
    raise FinevlError(f"{path}: not a finevl model folder (model_type {model_type or 'unknown'})")


def _model_type(config: Path) -> str:
    if not config.is_file():
        return ""
    try:
        return str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
    except (json.JSONDecodeError, AttributeError) as e:
        raise FinevlError(f"{config}: not a readable config ({e})") from None


def load_model(
    path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Any:
    """The model in a folder, of whichever kind (`model_kind`), on `device` in `dtype` when
    given. Local files and safetensors only."""
    from finevl.models.attribute_judge import load_attribute_judge
    from finevl.models.captioner import load_captioner
    from finevl.models.clip import load_clip
    from finevl.models.grammar import load_grammar
    from finevl.models.lvlm import load_lvlm
    from finevl.models.region import load_region_model

    kind = model_kind(path)
    if kind == "clip":
        return load_clip(path, device=device, dtype=dtype)
    if kind == "region":
        return load_region_model(path, device=device, dtype=dtype)
    if kind == "lvlm":
        return load_lvlm(path, dtype=dtype, device=torch.device(device) if device is not None else None)
    loader = {"judge": load_attribute_judge, "grammar": load_grammar, "captioner": load_captioner}[kind]
    model = loader(path)
    module = model.model if kind == "captioner" else model
    if device is not None or dtype is not None:
        module.to(device=device, dtype=dtype)
    return model


class Pretrained:
    """`save_pretrained(dir)` and `from_pretrained(dir)` for a model class with `save(dir)`."""

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Save to a folder, atomically; `from_pretrained` and `load_model` read it back."""
        return self.save(out_dir)  # type: ignore[attr-defined]

    @classmethod
    def from_pretrained(cls, path: str | Path, **placement: Any) -> Any:
        """The model saved in `path`, refused (one error line) when the folder holds another kind."""
        model = load_model(path, **placement)
        if not isinstance(model, cls):
            raise FinevlError(f"{path}: a {model_kind(path)} model, not a {cls.__name__}")
        return model
