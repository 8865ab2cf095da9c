"""Compositional evaluation (SugarCrepe-style) of a CLIP on any list of `ComposePair`s:
FineShapes' own (`finevl.world.compose`, built by the caller) or SugarCrepe's files.

Next to the model's accuracy it reports a text-only (blind) baseline: each caption scored
by its cosine to the mean image embedding of the evaluated set, the text prior alone. On a
well-made benchmark it sits near 0.5: the negatives cannot be told apart without the image.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch

from finevl.apps.search import embed_image_files
from finevl.data.images import ImageLoader
from finevl.data.sugarcrepe import ComposePair
from finevl.errors import FinevlError
from finevl.metrics.compose import CompositionalAccuracy
from finevl.models.clip import Clip


def compose_eval(
    clip: Clip,
    pairs: list[ComposePair],
    loader: ImageLoader | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Accuracy cos(image, positive) > cos(image, negative) per category and its macro
    `mean` (`metrics`), the same for the blind baseline (`text_only`), pairs per category,
    the number of images and of skipped unreadable images."""
    if not pairs:
        raise FinevlError("no pairs to evaluate")
    loader = loader or ImageLoader()
    images = embed_image_files(clip, list(dict.fromkeys(p.image for p in pairs)), loader, progress)
    pairs = [p for p in pairs if p.image in images]
    if not pairs:
        raise FinevlError("no readable images to evaluate")
    texts = list(dict.fromkeys(t for p in pairs for t in (p.positive, p.negative)))
    index = {t: k for k, t in enumerate(texts)}
    text_feats = clip.embed_texts(texts)  # (T, D)
    pos = text_feats[[index[p.positive] for p in pairs]]  # (N, D)
    neg = text_feats[[index[p.negative] for p in pairs]]
    img = torch.stack([images[p.image] for p in pairs])  # (N, D)
    categories = [p.category for p in pairs]
    model, blind = CompositionalAccuracy(), CompositionalAccuracy()
    model.update(img, pos, neg, categories)
    mean = torch.stack(list(images.values())).mean(0)
    blind.update((mean / mean.norm()).expand_as(pos), pos, neg, categories)
    return {
        "metrics": model.compute(),
        "text_only": blind.compute(),
        "pairs": dict(Counter(categories)),
        "images": len(images),
        "skipped_images": len(loader.skipped),
    }
