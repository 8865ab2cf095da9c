"""`finevl score`: CLIP-S and RefCLIP-S of image-caption pairs from JSON, JSONL or CSV, with
each distinct image and reference embedded once (caches), per-item and mean out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from finevl.data.images import ImageLoader
from finevl.data.jsonio import iter_jsonl, read_csv, read_json
from finevl.errors import FinevlError
from finevl.metrics.clipscore import PREFIX, CaptionEmbedder, W, pair_scores
from finevl.models.clip import Clip


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
) -> dict[str, Any]:
    """Per-row CLIP-S (and RefCLIP-S where a row has refs) and their means."""
    loader = loader or ImageLoader()
    paths = list(dict.fromkeys(r["image"] for r in rows))
    images = {p: loader(p) for p in paths}
    good = [p for p in paths if images[p] is not None]
    kept = [r for r in rows if images[r["image"]] is not None]
    if not kept:
        raise FinevlError("no readable images to score")
    image_emb = dict(zip(good, clip.embed_images([images[p] for p in good]), strict=True))
    texts = CaptionEmbedder(clip, prefix)
    cand = texts([r["caption"] for r in kept])
    image_feats = torch.stack([image_emb[r["image"]] for r in kept])
    scores = pair_scores(image_feats, cand, w=w)
    items = [
        {"image": r["image"], "caption": r["caption"], "CLIP-S": s}
        for r, s in zip(kept, scores["CLIP-S"].tolist(), strict=True)
    ]
    with_refs = [k for k, r in enumerate(kept) if r.get("refs")]
    if with_refs:
        refs = texts.references([kept[k]["refs"] for k in with_refs])
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
        "skipped_images": len(loader.skipped),
        "unique_images": len(good),
        "unique_refs": len({t for r in kept for t in r.get("refs") or []}),
    }


def write_items_csv(path: str | Path, items: list[dict[str, Any]]) -> None:
    """Per-item scores as CSV (atomic)."""
    from finevl.data.jsonio import write_csv_atomic

    write_csv_atomic(path, items)
