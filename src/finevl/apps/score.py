"""`finevl score`: CLIP-S and RefCLIP-S of image-caption pairs from JSON, JSONL or CSV, with
each distinct image and reference embedded once (caches), per-item and mean out."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch

from finevl.apps.config import ScoreConfig
from finevl.apps.search import image_share
from finevl.apps.sharded import Share, embed_in_shares
from finevl.data.files import claim_outputs
from finevl.data.images import ImageLoader
from finevl.data.jsonio import iter_jsonl, read_csv, read_json, write_result
from finevl.errors import FinevlError
from finevl.metrics.clipscore import PREFIX, CaptionEmbedder, W, pair_scores
from finevl.models.clip import Clip, load_placed_clip
from finevl.models.device import dtype_name

SCRATCH = Path(tempfile.gettempdir()) / "finevl-score"  # where processes leave their shares


def read_score_input(path: str | Path) -> list[dict[str, Any]]:
    """Rows `{"image", "caption", "refs"?}`: a JSON list, JSONL, or CSV with columns image,
    caption and optional refs (separated by '|'). Image paths are relative to the file."""
    path = Path(path)
    if path.suffix == ".csv":
        rows = read_csv(path)
        for r in rows:
            r["refs"] = [t for t in (r.get("refs") or "").split("|") if t.strip()]
    elif path.suffix == ".jsonl":
        rows = [r for _, r in iter_jsonl(path)]
    else:
        rows = read_json(path)
    if not isinstance(rows, list) or not rows:
        raise FinevlError(f"{path}: no rows to score")
    for k, r in enumerate(rows):
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("image"), str)
            or not isinstance(r.get("caption"), str)
        ):
            raise FinevlError(f"{path}: row {k}: needs 'image' and 'caption' strings")
        if not r["caption"].strip():
            raise FinevlError(f"{path}: row {k}: empty caption")
        r["image"] = str(path.parent / r["image"]) if not Path(r["image"]).is_absolute() else r["image"]
    return rows


def score_rows(
    clip: Clip,
    rows: list[dict[str, Any]],
    prefix: str = PREFIX,
    loader: ImageLoader | None = None,
    w: float = W,
) -> dict[str, Any] | None:
    """Per-row CLIP-S (and RefCLIP-S where a row has refs) and their means. Under
    `accelerate launch`, the distinct images and texts are embedded in shares over the
    processes and the main process scores (the others return None)."""
    loader = loader or ImageLoader()
    paths = list(dict.fromkeys(r["image"] for r in rows))
    texts = list(dict.fromkeys([r["caption"] for r in rows] + [t for r in rows for t in r.get("refs") or []]))
    images = embed_in_shares(paths, partial(image_share, clip, loader), SCRATCH)
    captions = embed_in_shares(texts, partial(_embed_text_share, clip, prefix), SCRATCH)
    if images is None or captions is None:
        return None
    vectors, good, skipped = images
    image_emb = dict(zip(good, torch.from_numpy(vectors), strict=True))
    kept = [r for r in rows if r["image"] in image_emb]
    if not kept:
        raise FinevlError("no readable images to score")
    embedder = CaptionEmbedder(
        clip, prefix, known=dict(zip(captions[1], torch.from_numpy(captions[0]), strict=True))
    )
    cand = embedder([r["caption"] for r in kept])
    image_feats = torch.stack([image_emb[r["image"]] for r in kept])
    scores = pair_scores(image_feats, cand, w=w)
    items = [
        {"image": r["image"], "caption": r["caption"], "CLIP-S": s}
        for r, s in zip(kept, scores["CLIP-S"].tolist(), strict=True)
    ]
    with_refs = [k for k, r in enumerate(kept) if r.get("refs")]
    if with_refs:
        refs = embedder.references([kept[k]["refs"] for k in with_refs])
        for name, values in pair_scores(image_feats[with_refs], cand[with_refs], refs, w).items():
            for k, v in zip(with_refs, values.tolist(), strict=True):
                items[k][name] = v
    means = {
        m: sum(i[m] for i in items if m in i) / max(1, sum(m in i for i in items))
        for m in ("CLIP-S", "RefCLIP-S", "RefCLIP-S-j")
        if any(m in i for i in items)
    }
    return {
        "metrics": means,
        "items": items,
        "skipped_images": len(skipped),
        "unique_images": len(good),
        "unique_refs": len({t for r in kept for t in r.get("refs") or []}),
    }


def _embed_text_share(clip: Clip, prefix: str, share: list[str]) -> Share:
    return clip.embed_texts([prefix + t for t in share]).numpy(), share, []


def write_items_csv(path: str | Path, items: list[dict[str, Any]]) -> None:
    """Per-item scores as CSV (atomic)."""
    from finevl.data.jsonio import write_csv_atomic

    write_csv_atomic(path, items)


def score_command(cfg: ScoreConfig, overwrite: bool = False) -> dict[str, Any] | None:
    """`finevl score`: CLIP-S and RefCLIP-S of a file's pairs (JSON to `cfg.out`, items to
    `cfg.csv_out`); None on a process other than the main one under `accelerate launch`."""
    claim_outputs(overwrite, cfg.out, cfg.csv_out)
    rows = read_score_input(cfg.pairs)
    clip = load_placed_clip(cfg.model, cfg.weights, cfg.device, cfg.dtype)
    result = score_rows(clip, rows, cfg.prefix, ImageLoader(cfg.on_bad_image))  # type: ignore[arg-type]
    if result is None:  # it wrote its shares
        return None
    if cfg.csv_out is not None:
        write_items_csv(cfg.csv_out, result["items"])
    return write_result(
        {
            "dataset": str(cfg.pairs),
            "model": cfg.model,
            "task": "clip_score",
            "dtype": dtype_name(clip.dtype),
            **result,
        },
        cfg.out,
    )
