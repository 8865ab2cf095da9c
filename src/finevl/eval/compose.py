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
from finevl.data.files import claim_outputs
from finevl.data.images import ImageLoader
from finevl.data.jsonio import write_result
from finevl.data.sugarcrepe import ComposePair, read_sugarcrepe
from finevl.errors import FinevlError
from finevl.eval.config import ComposeConfig
from finevl.metrics.compose import CompositionalAccuracy
from finevl.models.clip import Clip, load_placed_clip
from finevl.models.device import dtype_name


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


def compose_command(
    cfg: ComposeConfig, overwrite: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """`finevl clip compose`: pairs from a world's scenes or SugarCrepe's files, scored; the
    results written to `cfg.out`."""
    from finevl.world.compose import world_pairs

    claim_outputs(overwrite, cfg.out)
    if cfg.world is not None:
        made = world_pairs(cfg.world, None if cfg.split == "all" else cfg.split, cfg.limit, cfg.seed)
        pairs, extra = made.pairs, {"dropped": made.dropped, "balanced_out": made.balanced_out}
        dataset = f"{cfg.world}:{cfg.split}:seed{cfg.seed}"
    else:
        pairs, extra = read_sugarcrepe(cfg.sugarcrepe, cfg.images, cfg.limit), {"dropped": {}}  # type: ignore[arg-type]
        dataset = f"sugarcrepe:{cfg.sugarcrepe}"
    clip = load_placed_clip(cfg.model, cfg.weights, cfg.device, cfg.dtype)
    result = compose_eval(clip, pairs, ImageLoader(cfg.on_bad_image), progress)  # type: ignore[arg-type]
    return write_result(
        {
            "dataset": dataset,
            "model": cfg.model,
            "task": "compositionality",
            "dtype": dtype_name(clip.dtype),
            **result,
            **extra,
        },
        cfg.out,
    )
