"""Captioning images with a trained captioner, in batches."""

from __future__ import annotations

import torch

from finevl.errors import FinevlError
from finevl.models.captioner import CaptionerBundle
from finevl.models.clip import Clip


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
