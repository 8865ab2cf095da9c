"""Captioning images with a trained captioner, in batches (on N processes under
`accelerate launch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from finevl.apps.config import CaptionGenerateConfig
from finevl.apps.sharded import Share, embed_in_shares
from finevl.data.files import claim_outputs
from finevl.data.imagetext import load_image_text
from finevl.data.jsonio import write_json_atomic
from finevl.errors import FinevlError
from finevl.models.captioner import CaptionerBundle
from finevl.models.clip import Clip, load_placed_clip
from finevl.models.device import dtype_name


@torch.inference_mode()
def generate_captions(
    bundle: CaptionerBundle,
    clip: Clip,
    images: torch.Tensor,
    decoding: str = "greedy",
    beams: int = 3,
    max_new_tokens: int = 20,
    batch_size: int = 64,
) -> list[str]:
    """One caption per (N, 3, S, S) uint8 image: CLIP image tokens, then the decoder."""
    if decoding not in ("greedy", "beam", "sample"):
        raise FinevlError(f"--decoding must be greedy, beam or sample, not {decoding!r}")
    if bundle.model.config.vision_dim != clip.embed_pixels(images[:1], tokens=True).shape[-1]:
        raise FinevlError(f"{clip.name}: not the CLIP this captioner was trained on (feature width differs)")
    captions: list[str] = []
    for i in range(0, len(images), batch_size):
        feats = clip.embed_pixels(images[i : i + batch_size], tokens=True)
        feats = feats.to(bundle.model.device, bundle.model.dtype)
        ids = bundle.model.generate_ids(feats, decoding, max_new_tokens=max_new_tokens, num_beams=beams)  # type: ignore[arg-type]
        captions += bundle.decode(ids.cpu())
    return captions


def caption_dataset(
    bundle: CaptionerBundle,
    clip: Clip,
    data: str | Path,
    out: str | Path,
    split: str | None = "test",
    limit: int | None = None,
    decoding: str = "greedy",
    beams: int = 3,
    max_new_tokens: int = 20,
) -> dict[str, Any] | None:
    """Caption a dataset's images into `out` (COCO results format). Under `accelerate
    launch` each process captions a contiguous share and the main process writes the one file
    in order (the others return None); greedy and beam decoding give the captions of one
    process."""
    images = load_image_text(data, clip.image_size, split=split, limit=limit)

    def share(rows: list[int]) -> Share:
        picked = images.images[rows] if rows else images.images[:0]
        captions = generate_captions(bundle, clip, picked, decoding, beams, max_new_tokens) if rows else []
        preds = [{"image_id": images.image_ids[i], "caption": c} for i, c in zip(rows, captions, strict=True)]
        return np.zeros((len(rows), 0), dtype=np.float32), preds, []

    merged = embed_in_shares(list(range(len(images))), share, out)
    if merged is None:
        return None
    write_json_atomic(out, merged[1])
    return {
        "predictions": str(out),
        "images": len(merged[1]),
        "decoding": decoding,
        "dtype": dtype_name(clip.dtype),
    }


def generate_command(cfg: CaptionGenerateConfig, overwrite: bool = False) -> dict[str, Any] | None:
    """`finevl caption generate`: the captioner on its own CLIP, placed; `caption_dataset`."""
    from finevl.models.captioner import load_captioner

    claim_outputs(overwrite, cfg.out)
    bundle = load_captioner(cfg.model)
    clip = load_placed_clip(bundle.model.config.clip_model, None, cfg.device, cfg.dtype)
    bundle.model.to(clip.device, clip.dtype)
    return caption_dataset(
        bundle, clip, cfg.data, cfg.out, cfg.split, cfg.limit, cfg.decoding, cfg.beams, cfg.max_new_tokens
    )
