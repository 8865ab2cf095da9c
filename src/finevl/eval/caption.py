"""`finevl finecap eval`: everything seed 000 measures about a set of generated captions,
plus FineShapes' exact oracle.

Predictions come in COCO results format (`[{"image_id", "caption"}]`), so any captioner's
output is scored the same way. Per image of the annotation folder (a world, or any folder
with `captions.json` and `finecap.json`):
- BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (pycocoevalcap) against the coarse references, the
  fine caption, and each criterion's phrases (background, object, relation);
- FineCapEval's accuracy per criterion (stemmed word overlap, upstream's definition);
- fact precision / recall / F1 per criterion from `parse_caption` (needs the scene record);
- CLIP-S and RefCLIP-S (coarse references) with a frozen CLIP, and text->image R@1/5/10 with
  each caption as the query over the evaluated images;
- the degenerate-text rate (repeated n-grams, repeated clauses, unparseable captions).
Unknown or duplicate image ids and non-UTF-8 files are errors; empty captions are counted
and scored as empty (0 on every measure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from finevl.data.coco import CocoCaptions
from finevl.data.files import claim_outputs
from finevl.data.formats import FinecapRecord, read_finecap, read_finecapeval_csv
from finevl.data.jsonio import read_json, write_result
from finevl.errors import FinevlError
from finevl.eval.config import FinecapEvalConfig
from finevl.language.facts import scene_from_record
from finevl.metrics.captioning import SPICE_NOTE, caption_metrics
from finevl.metrics.clipscore import CaptionEmbedder, ClipScore
from finevl.metrics.finecap import FINECAP_CRITERIA, DegenerateRate, FactScores, FinecapAccuracy
from finevl.metrics.retrieval import retrieval_recall
from finevl.models.clip import Clip, load_placed_clip
from finevl.models.device import dtype_name

HEADLINE = {  # the columns of a comparison table -> their path in `evaluate_captions`' metrics
    "BLEU-4 (coarse)": ("ngram", "coarse", "Bleu_4"),
    "CIDEr (coarse)": ("ngram", "coarse", "CIDEr"),
    "CIDEr (fine)": ("ngram", "fine", "CIDEr"),
    "fact recall": ("facts", "recall/all"),
    "object recall": ("facts", "recall/object"),
    "relation recall": ("facts", "recall/relation"),
    "background recall": ("facts", "recall/background"),
    "fact precision": ("facts", "precision/all"),
    "FineCapEval object acc": ("finecap_accuracy", "object"),
    "CLIP-S": ("clip", "CLIP-S"),
    "RefCLIP-S": ("clip", "RefCLIP-S"),
    "R@1 (t→i)": ("clip", "image_retrieval_recall@1"),
    "degenerate": ("degenerate_rate",),
    "unparseable": ("unparseable_rate",),
}


def headline(result: dict[str, Any]) -> dict[str, float | None]:
    """The HEADLINE columns of one evaluation (None where the evaluation lacks one, e.g. no CLIP)."""
    out: dict[str, float | None] = {}
    for column, path in HEADLINE.items():
        value: Any = result["metrics"]
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        out[column] = None if value is None else float(value)
    return out


def read_predictions(path: str | Path, known_ids: set[int]) -> tuple[dict[int, str], int]:
    """(image id -> caption, number of empty captions) from a COCO results file."""
    path = Path(path)
    rows = read_json(path)
    if not isinstance(rows, list) or not rows:
        raise FinevlError(f"{path}: expected a non-empty list of {{'image_id', 'caption'}}")
    preds: dict[int, str] = {}
    for k, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("image_id"), int):
            raise FinevlError(f"{path}: item {k} needs an integer image_id")
        if not isinstance(row.get("caption"), str):
            raise FinevlError(f"{path}: item {k} (image {row['image_id']}) needs a caption string")
        if row["image_id"] in preds:
            raise FinevlError(f"{path}: image_id {row['image_id']} appears twice (item {k})")
        preds[row["image_id"]] = row["caption"].strip()
    unknown = sorted(preds.keys() - known_ids)
    if unknown:
        raise FinevlError(f"{path}: {len(unknown)} image ids not in the annotations, e.g. {unknown[:5]}")
    return preds, sum(not c for c in preds.values())


def _ngram_tables(
    preds: dict[int, str],
    refs: dict[int, list[str]],
    fine: dict[int, FinecapRecord],
    fine_refs: dict[int, list[str]],
    meteor: bool,
) -> dict[str, dict[str, float | None]]:
    tables = {"coarse": caption_metrics(preds, {i: refs[i] for i in preds}, meteor)} if refs else {}
    tables["fine"] = caption_metrics(preds, {i: fine_refs.get(i) or [fine[i].caption] for i in preds}, meteor)
    for criterion in FINECAP_CRITERIA:
        have = {i: fine[i].phrases.get(criterion, []) for i in preds}
        have = {i: p for i, p in have.items() if p}
        if have:
            tables[criterion] = caption_metrics({i: preds[i] for i in have}, have, meteor)
    return tables


def _oracle(preds: dict[int, str], fine: dict[int, FinecapRecord]) -> dict[str, Any]:
    facts, accuracy, upstream, degenerate = (
        FactScores(),
        FinecapAccuracy(),
        FinecapAccuracy.upstream(),
        DegenerateRate(),
    )
    for i, caption in preds.items():
        accuracy.update(caption, fine[i].phrases)
        upstream.update(caption, fine[i].phrases)
        degenerate.update(caption)
        if fine[i].scene is not None:
            facts.update(caption, scene_from_record(fine[i].scene))
    out = {
        "finecap_accuracy": accuracy.compute(),
        "finecap_accuracy_upstream": upstream.compute(),
        **degenerate.compute(),
    }
    if any(fine[i].scene is not None for i in preds):
        out["facts"] = facts.compute()
    return out


def _clip_measures(
    clip: Clip, images: torch.Tensor, ids: list[int], preds: dict[int, str], refs: dict[int, list[str]]
) -> dict[str, float]:
    """CLIP-S / RefCLIP-S (candidates and references prefixed, as Hessel et al.; empty
    captions score 0) and retrieval with each caption as the query, both directions."""
    image_emb = clip.embed_pixels(images)
    said = [k for k, i in enumerate(ids) if preds[i]]
    out = dict.fromkeys(("CLIP-S", "RefCLIP-S", "RefCLIP-S-j"), 0.0)
    if said:
        texts = CaptionEmbedder(clip)
        score = ClipScore()
        score.update(
            image_emb[said],
            texts([preds[ids[k]] for k in said]),
            texts.references([refs[ids[k]] for k in said]),
        )
        out = {name: v * len(said) / len(ids) for name, v in score.compute().items()}  # empty ones: 0
    queries = clip.embed_texts([preds[i] or "." for i in ids])
    return (
        out
        | retrieval_recall(image_emb, queries, torch.arange(len(ids)), ks=(1, 5, 10, 50))
        | _ranks(queries @ image_emb.T)
    )


def _ranks(sims: torch.Tensor) -> dict[str, float]:
    """Median and mean rank (1 = first) of each caption's own image, as upstream reports."""
    ranks = (sims > sims.diagonal()[:, None]).sum(1).float() + 1
    return {
        "image_retrieval_median_rank": ranks.median().item(),
        "image_retrieval_mean_rank": ranks.mean().item(),
    }


def _annotations(ann: Path) -> tuple[dict[int, list[str]], dict[int, FinecapRecord], dict[int, list[str]]]:
    """(coarse references, fine records, fine references) of a world-style folder, or of a
    FineCapEval CSV (no coarse references there; its several captions per image are the
    fine references)."""
    if ann.suffix.lower() == ".csv":
        records, captions = read_finecapeval_csv(ann)
        return {}, {r.image_id: r for r in records}, captions
    fine = {r.image_id: r for r in read_finecap(ann / "finecap.json")}
    return CocoCaptions(ann / "captions.json").captions, fine, {}


def _images(ann: Path, images: Path | None, side: int, ids: list[int], fine: dict[int, FinecapRecord]):
    """(N, 3, S, S) uint8 images of the predicted ids, from the world or an image folder."""
    from finevl.data.imagetext import ImageTextSet, load_image_text

    if images is None:
        if ann.suffix.lower() == ".csv":
            raise FinevlError("--clip with a FineCapEval CSV needs --images (the folder of its images)")
        data = load_image_text(ann, side, split=None)
        wanted = set(ids)
        keep = [k for k, i in enumerate(data.image_ids) if i in wanted]
        return data.images[keep], [data.image_ids[k] for k in keep]
    from finevl.data.images import ImageLoader

    loader = ImageLoader()
    rows = []
    for i in ids:
        path = images / fine[i].file_name
        if not path.is_file():
            raise FinevlError(f"{path}: image of id {i} not found")
        rows.append((i, fine[i].file_name, loader(path), [], None))
    data = ImageTextSet.from_rows(rows, side)
    return data.images, data.image_ids


def evaluate_captions(
    pred_path: str | Path,
    ann: str | Path,
    clip: Clip | None = None,
    meteor: bool = True,
    images: str | Path | None = None,
) -> dict[str, Any]:
    """All of the module docstring's measures, as a CLIP_benchmark-shaped results dict.
    `ann` is a world-style folder or a FineCapEval CSV (then `images` holds its images for
    the CLIP measures; coarse-reference metrics and the fact oracle need a world)."""
    ann = Path(ann)
    refs, fine, fine_refs = _annotations(ann)
    preds, empty = read_predictions(pred_path, set(fine))
    ngram = _ngram_tables(preds, refs, fine, fine_refs, meteor)
    metrics: dict[str, Any] = {"ngram": ngram, **_oracle(preds, fine)}
    if clip is not None:
        pixels, ids = _images(ann, Path(images) if images else None, clip.image_size, sorted(preds), fine)
        metrics["clip"] = _clip_measures(
            clip, pixels, ids, preds, refs or {i: fine_refs.get(i) or [fine[i].caption] for i in ids}
        )
    return {
        "dataset": str(ann),
        "task": "finecap",
        "predictions": str(pred_path),
        "images": len(preds),
        "empty_captions": empty,
        "metrics": metrics,
        "notes": [SPICE_NOTE],
    }


def finecap_command(cfg: FinecapEvalConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl finecap eval`: `evaluate_captions`, with the CLIP placed; also written to `cfg.out`."""
    claim_outputs(overwrite, cfg.out)
    clip = load_placed_clip(cfg.clip, None, cfg.device, cfg.dtype) if cfg.clip else None
    result = evaluate_captions(cfg.pred, cfg.ann, clip, meteor=cfg.meteor, images=cfg.images)
    return write_result({**result, **({"dtype": dtype_name(clip.dtype)} if clip else {})}, cfg.out)
