"""`finevl region eval`: a region model on a FineShapes split, every task Osprey reports.

Each object of the evaluated images is pointed at by its exact mask and asked three
questions: its category (referring-object classification, S-IoU and SS; the same answers
labelled by sentence similarity give open-vocabulary segmentation, mIoU and PQ), a short
phrase (region captioning, METEOR and CIDEr against the region's short description, and
whether it names the region's colour: the colour a box around an overlapping object mixes
up) and a
detailed description (exact fact precision/recall against that object's facts, in place of
upstream's GPT-4 judge). Objects that overlap another are also scored apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from finevl.data.files import claim_outputs
from finevl.data.images import ImageCache, load_image
from finevl.data.jsonio import dumps, write_json_atomic, write_text_atomic
from finevl.data.regions import read_mask_png, resolve_regions
from finevl.errors import FinevlError
from finevl.eval.config import RegionAskConfig
from finevl.eval.vqa import model_label
from finevl.language import vocab
from finevl.language.facts import scene_from_record
from finevl.language.grammar import parse_caption
from finevl.metrics.captioning import caption_metrics
from finevl.metrics.finecap import FactScores
from finevl.metrics.region import OpenVocabSegmentation, ReferringClassification, answer_classes
from finevl.models.device import dtype_name, placement
from finevl.models.region import REGION, RegionLvlm, RegionPrompt, check_masks, load_region_model
from finevl.train.region.config import RegionEvalConfig, RegionPipelineConfig
from finevl.train.region.data import WorldRegion, world_regions
from finevl.train.region.prompts import CLASS, DETAILED, OVERVIEW, SHORT

TASKS = {"class": CLASS, "short": SHORT, "detailed": DETAILED}
MAX_TOKENS = {"class": 8, "short": 16}


def _questions(
    model: RegionLvlm, regions: list[WorldRegion], images: ImageCache, task: str
) -> list[RegionPrompt]:
    question = f"{OVERVIEW}\n{TASKS[task].format(r=REGION)}"
    return [RegionPrompt(images(r.file_name), [r.mask()], question) for r in regions]


def region_answers(
    model: RegionLvlm,
    regions: list[WorldRegion],
    images: ImageCache,
    max_new_tokens: int = 64,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[str]]:
    """{task: one answer per region} for the three evaluation questions (greedy)."""
    out = {}
    for task in TASKS:
        prompts = _questions(model, regions, images, task)
        limit = min(max_new_tokens, MAX_TOKENS.get(task, max_new_tokens))
        out[task] = model.generate(prompts, limit, batch_size=batch_size, progress=progress)
    return out


def _colour_right(answer: str, region: WorldRegion) -> bool:
    """Whether a short answer names exactly one colour, the region's own."""
    named = {
        f.subject.split()[0] for f in parse_caption(answer).facts if f.kind == "object" and " " in f.subject
    }
    return named == {region.attributes["color"]}


def _by_group(
    hits: list[bool], groups: list[tuple[str, ...]], name: str = "color_accuracy"
) -> dict[str, float]:
    out = {name: sum(hits) / max(1, len(hits))}
    for group in sorted({g for gs in groups for g in gs}):
        rows = [h for h, gs in zip(hits, groups, strict=True) if group in gs]
        out[f"{name}/{group}"] = sum(rows) / max(1, len(rows))
    return out


def region_metrics(
    regions: list[WorldRegion], answers: dict[str, list[str]], meteor: bool = True
) -> dict[str, Any]:
    """Every region metric of the answers (see the module docstring)."""
    groups = [("overlapping",) if r.overlapping else ("separate",) for r in regions]
    classification = ReferringClassification()
    classification.update(answers["class"], [r.category for r in regions], groups)
    names = list(vocab.SHAPES)
    predicted = answer_classes(answers["class"], [vocab.SHAPES[n] for n in names])
    segmentation = OpenVocabSegmentation(len(names))
    masks = {}
    for r, p in zip(regions, predicted, strict=True):
        masks.setdefault(r.image_id, []).append((r.mask(), names.index(r.category), int(p)))
    for rows in masks.values():
        segmentation.update(*zip(*rows, strict=True))
    captions = caption_metrics(
        {k: a for k, a in enumerate(answers["short"])}, {k: [r.short] for k, r in enumerate(regions)}, meteor
    )
    colours = [_colour_right(a, r) for a, r in zip(answers["short"], regions, strict=True)]
    facts = FactScores()
    for r, text in zip(regions, answers["detailed"], strict=True):
        facts.update(text, scene_from_record(r.scene), r.index)
    return {
        "classification": classification.compute(),
        "segmentation": segmentation.compute(),
        "captioning": {
            "METEOR": captions["METEOR"],
            "CIDEr": captions["CIDEr"],
            **_by_group(colours, groups),
        },
        "description": facts.compute(),
    }


def evaluate_regions(
    cfg: RegionEvalConfig, meteor: bool = True, progress: Callable[[int], None] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(a CLIP_benchmark-shaped result, one answer record per region) on the first
    `cfg.limit` images of the split."""
    regions_by_image = world_regions(cfg.data, cfg.split)
    chosen = sorted(regions_by_image)[: cfg.limit]
    regions = [r for i in chosen for r in regions_by_image[i]]
    net = load_region_model(cfg.model, *placement(cfg.device, cfg.dtype))
    images = ImageCache(Path(cfg.data) / "images")
    answers = region_answers(net, regions, images, cfg.max_new_tokens, cfg.batch_size, progress)
    records = [
        {
            "image": f"images/{r.file_name}",
            "image_id": r.image_id,
            "region": r.index,
            "segmentation": r.segmentation,
            "category": r.category,
            "short": r.short,
            "overlapping": r.overlapping,
            **{f"answer_{task}": answers[task][k] for task in TASKS},
        }
        for k, r in enumerate(regions)
    ]
    result = {
        "dataset": f"{cfg.data}:{cfg.split}",
        "model": str(cfg.model),
        "label": cfg.label or model_label(cfg.model),
        "task": "region",
        "dtype": dtype_name(net.clip.dtype),
        "config": {"region_input": net.config.region_input, "spatial_token": net.config.spatial_token},
        "metrics": region_metrics(regions, answers, meteor),
        "answers": answers_file(cfg.out).name,
    }
    return result, records


def answers_file(out: str | Path) -> Path:
    """Where the per-region answers of a results file go (beside it, JSONL)."""
    out = Path(out)
    return out.with_name(out.stem + "-answers.jsonl")


def write_region_results(out: str | Path, result: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """The results JSON and, beside it, one JSONL line per region (the report draws them)."""
    write_text_atomic(answers_file(out), "".join(dumps(r) + "\n" for r in records))
    write_json_atomic(out, result)


def ask_regions(
    model: str | Path,
    image: str | Path,
    masks: list[str | Path],
    question: str,
    max_new_tokens: int = 64,
    device: str = "auto",
    dtype: str = "auto",
) -> dict[str, Any]:
    """One question about regions of one image, each region a mask file; every mask must be
    named in the question (`<regionN>` or `<mask><pos>` in order)."""
    if not question.strip():
        raise FinevlError("--question is empty")
    text, order = resolve_regions(question, len(masks), "--question")
    if sorted(set(order)) != list(range(len(masks))):
        raise FinevlError(f"the question names {len(set(order))} of the {len(masks)} masks given; name each")
    picture = load_image(image)
    arrays = [read_mask_png(m) for m in masks]
    prompt = RegionPrompt(picture, [arrays[k] for k in order], text)
    check_masks(prompt.masks, picture.size, text)  # before the model loads: fail fast
    answer = load_region_model(model, *placement(device, dtype)).generate([prompt], max_new_tokens)[0]
    return {"model": str(model), "image": str(image), "question": question, "answer": answer}


def region_eval_command(
    cfg: RegionEvalConfig, overwrite: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """`finevl region eval`: `evaluate_regions`, its results and answers written beside each other."""
    claim_outputs(overwrite, cfg.out, answers_file(cfg.out))
    result, records = evaluate_regions(cfg, progress=progress)
    write_region_results(cfg.out, result, records)
    return result


def ask_command(cfg: RegionAskConfig) -> dict[str, Any]:
    """`finevl region ask`: `ask_regions` with the command's settings."""
    return ask_regions(
        cfg.model, cfg.image, list(cfg.mask), cfg.question, cfg.max_new_tokens, cfg.device, cfg.dtype
    )


def region_quickstart(
    cfg: RegionPipelineConfig, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """`finevl region quickstart`: the LM and stages 1-3 (`run_chain`), then the model
    evaluated (`OUT/results/region.json` and its answers)."""
    from finevl.data.files import claim_run_folder
    from finevl.train.region.pipeline import run_chain

    claim_run_folder(cfg.out)
    model = run_chain(cfg)
    evaluation = RegionEvalConfig(
        model=model,
        data=cfg.data,
        out=str(Path(cfg.out) / "results" / "region.json"),
        limit=cfg.eval_images,
        label="Osprey (mask + spatial token)",
        dtype="float32",  # as trained: the quickstart's figures do not depend on the machine
    )
    result, records = evaluate_regions(evaluation, progress=progress)
    write_region_results(evaluation.out, result, records)
    return {"model": model, "metrics": result["metrics"]}
