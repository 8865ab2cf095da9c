"""Search: a faiss index of a collection's image embeddings, kept on disk, answering text or
image queries. Cosine similarity (unit vectors, inner-product index)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finevl.apps.config import IndexBuildConfig, IndexQueryConfig
from finevl.apps.sharded import Share, embed_in_shares
from finevl.data.files import atomic_dir, claim_output
from finevl.data.formats import IMAGE_SUFFIXES, image_folder
from finevl.data.images import ImageLoader, load_image
from finevl.data.jsonio import read_json, write_json_atomic
from finevl.errors import FinevlError
from finevl.models.clip import Clip, load_placed_clip
from finevl.models.device import dtype_name

INDEX_FILE, META_FILE = "index.faiss", "index.json"
BATCH = 256  # images loaded and embedded at once


def collect_images(sources: list[Path]) -> list[Path]:
    """Image files from files and folders (folders searched recursively), sorted, unique."""
    paths: list[Path] = []
    for src in sources:
        if src.is_dir():
            paths += [p for p, _ in image_folder(src)]
        elif src.is_file() and src.suffix.lower() in IMAGE_SUFFIXES:
            paths.append(src)
        else:
            raise FinevlError(f"{src}: not an image file or folder")
    paths = sorted(set(p.resolve() for p in paths))
    if not paths:
        raise FinevlError(f"{', '.join(map(str, sources))}: no images found")
    return paths


def embed_image_files(
    clip: Clip, paths: list[str], loader: ImageLoader, progress: Callable[[int], None] | None = None
) -> dict[str, torch.Tensor]:
    """Unit embedding of each readable image, by path, in batches of `BATCH` (a bad image
    raises or is skipped, as `loader` says)."""
    out: dict[str, torch.Tensor] = {}
    for i in range(0, len(paths), BATCH):
        loaded = [(p, loader(p)) for p in paths[i : i + BATCH]]
        kept = [(p, im) for p, im in loaded if im is not None]
        if kept:
            feats = clip.embed_images([im for _, im in kept])  # (B, D)
            out.update({p: f for (p, _), f in zip(kept, feats, strict=True)})
        if progress:
            progress(len(loaded))
    return out


def image_share(clip: Clip, loader: ImageLoader, paths: list[str]) -> Share:
    """A process's share of image files embedded: (vectors, the readable paths, skipped)."""
    emb = embed_image_files(clip, paths, loader)
    vectors = torch.stack(list(emb.values())).numpy() if emb else np.zeros((0, 0), np.float32)
    return vectors, list(emb), list(loader.skipped)


def build_index(
    clip: Clip,
    model_spec: str,
    paths: list[Path],
    out: str | Path,
    loader: ImageLoader | None = None,
    weights: str | None = None,
) -> dict[str, Any] | None:
    """Embed every image and write `index.faiss` + `index.json` (paths, model) atomically.
    Under `accelerate launch`, each process embeds its share and the main process writes the
    one index (the others return None)."""
    import faiss

    loader = loader or ImageLoader()
    merged = embed_in_shares([str(p) for p in paths], partial(image_share, clip, loader), out)
    if merged is None:
        return None
    vectors, kept, skipped = merged
    if not kept:
        raise FinevlError("no readable images to index")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    out = Path(out)
    meta = {
        "model": model_spec,
        "weights": weights,
        "dtype": dtype_name(clip.dtype),
        "dim": index.d,
        "count": index.ntotal,
        "paths": kept,
        "skipped": skipped,
    }
    with atomic_dir(out) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        write_json_atomic(tmp / META_FILE, meta)
    return {"index": str(out), "count": index.ntotal, "dim": index.d, "skipped_images": len(skipped)}


def open_index(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """(faiss index, metadata) of an index folder."""
    import faiss

    folder = Path(folder)
    if not (folder / INDEX_FILE).is_file() or not (folder / META_FILE).is_file():
        raise FinevlError(
            f"{folder}: not an index (no {INDEX_FILE} and {META_FILE}); build one with `finevl index build`"
        )
    try:
        index = faiss.read_index(str(folder / INDEX_FILE))
    except RuntimeError as e:
        raise FinevlError(f"{folder / INDEX_FILE}: unreadable index ({str(e).splitlines()[0]})") from None
    return index, read_json(folder / META_FILE)


def query_index(
    index: Any, meta: dict[str, Any], query: np.ndarray, k: int = 5
) -> list[list[dict[str, Any]]]:
    """The k nearest images of each (unit) query embedding."""
    if query.shape[1] != index.d:
        raise FinevlError(
            f"query embeddings have {query.shape[1]} dims but the index has {index.d}: another model?"
        )
    scores, ids = index.search(query.astype(np.float32), min(k, index.ntotal))
    return [
        [
            {"rank": r + 1, "path": meta["paths"][j], "score": float(s)}
            for r, (j, s) in enumerate(zip(row_ids, row_scores, strict=True))
        ]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]


def build_command(cfg: IndexBuildConfig, overwrite: bool = False) -> dict[str, Any] | None:
    """`finevl index build`: `build_index` over the given files and folders; the model is
    recorded by absolute path so queries reload it from anywhere."""
    claim_output(cfg.out, overwrite, folder=True)
    paths = collect_images(cfg.images)
    clip = load_placed_clip(cfg.model, cfg.weights, cfg.device, cfg.dtype)
    spec = str(Path(cfg.model).resolve()) if Path(cfg.model).exists() else cfg.model
    weights = str(Path(cfg.weights).resolve()) if cfg.weights else None
    return build_index(clip, spec, paths, cfg.out, ImageLoader(cfg.on_bad_image), weights)  # type: ignore[arg-type]


def query_command(cfg: IndexQueryConfig) -> dict[str, Any]:
    """`finevl index query`: the nearest images to each text, then each image query."""
    faiss_index, meta = open_index(cfg.index)
    clip = load_placed_clip(meta["model"], meta.get("weights"), cfg.device, cfg.dtype)
    feats = []
    if cfg.text:
        feats.append(clip.embed_texts(list(cfg.text)))
    if cfg.image:
        feats.append(clip.embed_images([load_image(p) for p in cfg.image]))
    hits = query_index(faiss_index, meta, torch.cat(feats).numpy(), cfg.k)
    queries = [*cfg.text, *(str(p) for p in cfg.image)]
    return {
        "index": str(cfg.index),
        "results": [{"query": q, "hits": h} for q, h in zip(queries, hits, strict=True)],
    }
