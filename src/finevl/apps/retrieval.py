"""Image-text retrieval evaluation and retrieval-based captioning."""

from __future__ import annotations

from typing import Any

import torch

from finevl.apps.config import RetrievalCaptionConfig, RetrievalConfig
from finevl.data.files import claim_outputs
from finevl.data.imagetext import ImageTextSet, load_image_text
from finevl.data.jsonio import write_json_atomic, write_result
from finevl.errors import FinevlError
from finevl.metrics.retrieval import retrieval_recall
from finevl.models.clip import Clip, load_placed_clip
from finevl.models.device import dtype_name


def evaluation_texts(data: ImageTextSet, captions: str) -> tuple[list[str], torch.Tensor]:
    """The texts of a retrieval benchmark and the image each describes: the fine caption
    of each image (`fine`), or all its references (`refs`)."""
    if captions == "fine":
        if any(f is None for f in data.fine):
            raise FinevlError("--captions fine needs fine captions (finecap.json) for every image")
        return [f.caption for f in data.fine], torch.arange(len(data))  # type: ignore[union-attr]
    if captions == "refs":
        texts = [t for refs in data.refs for t in refs]
        owners = torch.tensor([k for k, refs in enumerate(data.refs) for _ in refs])
        if not texts:
            raise FinevlError("no reference captions to retrieve")
        return texts, owners
    raise FinevlError(f"--captions must be 'fine' or 'refs', not {captions!r}")


def retrieval_eval(clip: Clip, data: ImageTextSet, captions: str = "fine") -> dict[str, float]:
    """CLIP_benchmark retrieval recall@1/5/10 both ways on an in-memory set."""
    return retrieval_with_examples(clip, data, captions)[0]


def retrieval_with_examples(
    clip: Clip, data: ImageTextSet, captions: str = "fine", examples: int = 0, k: int = 3
) -> tuple[dict[str, float], list[dict]]:
    """Recall metrics, and the top-k images of the first `examples` text queries."""
    texts, owners = evaluation_texts(data, captions)
    images, queries = clip.embed_pixels(data.images), clip.embed_texts(texts)
    shown = []
    for t in range(min(examples, len(texts))):
        scores, idx = (queries[t] @ images.T).topk(min(k, len(images)))
        shown.append(
            {
                "query": texts[t],
                "truth": data.file_names[int(owners[t])],
                "hits": [
                    {"file": data.file_names[j], "score": round(float(s), 4)}
                    for s, j in zip(scores, idx.tolist(), strict=True)
                ],
            }
        )
    return retrieval_recall(images, queries, owners), shown


def caption_by_retrieval(
    image_features: torch.Tensor, pool_features: torch.Tensor, pool: list[str]
) -> list[str]:
    """Caption each image with the pool caption most similar to it (unit features)."""
    if not pool:
        raise FinevlError("the caption pool is empty")
    return [pool[j] for j in (image_features @ pool_features.T).argmax(dim=1).tolist()]


def caption_pool(data: ImageTextSet, kind: str = "all") -> list[str]:
    """Distinct candidate captions of a set: fine captions, references, or both."""
    fine = [f.caption for f in data.fine if f is not None] if kind in ("fine", "all") else []
    refs = [t for r in data.refs for t in r] if kind in ("refs", "all") else []
    if kind not in ("fine", "refs", "all"):
        raise FinevlError(f"--pool-captions must be 'fine', 'refs' or 'all', not {kind!r}")
    return list(dict.fromkeys(fine + refs))


def retrieval_command(cfg: RetrievalConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl clip retrieval`: recall@k both ways on a dataset (also written to `cfg.out`)."""
    claim_outputs(overwrite, cfg.out)
    clip = load_placed_clip(cfg.model, cfg.weights, cfg.device, cfg.dtype)
    dataset = load_image_text(cfg.data, clip.image_size, split=cfg.split, limit=cfg.limit)
    metrics, shown = retrieval_with_examples(clip, dataset, cfg.captions, cfg.examples)
    result = {
        "dataset": f"{cfg.data}:{cfg.split}",
        "model": cfg.model,
        "task": "zeroshot_retrieval",
        "dtype": dtype_name(clip.dtype),
        "metrics": metrics,
        "images": len(dataset),
        "examples": shown,
    }
    return write_result(result, cfg.out)


def retrieval_caption_command(cfg: RetrievalCaptionConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl clip caption`: each image of `cfg.data` captioned by its nearest pool caption,
    written to `cfg.out` (COCO results format)."""
    claim_outputs(overwrite, cfg.out)
    clip = load_placed_clip(cfg.model, cfg.weights, cfg.device, cfg.dtype)
    images = load_image_text(cfg.data, clip.image_size, split=cfg.split)
    texts = caption_pool(load_image_text(cfg.pool, clip.image_size, split=cfg.pool_split), cfg.pool_captions)
    captions = caption_by_retrieval(clip.embed_pixels(images.images), clip.embed_texts(texts), texts)
    write_json_atomic(
        cfg.out, [{"image_id": i, "caption": c} for i, c in zip(images.image_ids, captions, strict=True)]
    )
    return {
        "predictions": str(cfg.out),
        "images": len(captions),
        "pool": len(texts),
        "dtype": dtype_name(clip.dtype),
    }
