"""`write_report`: one HTML page from saved artefacts: the world's gallery link, a CLIP
run's curve, zero-shot tables with confusion matrices, retrieval tables and examples, and
captioning: each model's metrics, captions side by side and the runs' reward curves; and
STIC: each vision-language model's VQA accuracy per family and descriptions side by side;
Osprey: each region model's metrics and its answers about each numbered mask; editing: the
benchmark's table and before/after figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image

from finevl.data.coco import CocoCaptions, decode_segmentation, rle_area_bbox
from finevl.data.files import claim_output
from finevl.data.images import load_image
from finevl.data.jsonio import iter_jsonl, read_json, write_text_atomic
from finevl.errors import FinevlError
from finevl.eval.caption import HEADLINE, headline
from finevl.eval.edit import SCORE_LABELS
from finevl.metrics.region import REGION_HEADLINE
from finevl.report.config import ReportConfig
from finevl.report.encode import image_data_uri
from finevl.report.gallery import overlay_masks
from finevl.report.plots import confusion, curve, curves


def _run_section(run: Path) -> dict[str, Any]:
    if not (run / "summary.json").is_file():
        raise FinevlError(f"{run}: not a finished training run (no summary.json)")
    by_step = (
        {r["step"]: r for _, r in iter_jsonl(run / "log.jsonl")} if (run / "log.jsonl").is_file() else {}
    )
    steps = sorted(by_step)
    return {
        "path": str(run),
        "config": read_json(run / "config.json"),
        "summary": read_json(run / "summary.json"),
        "curve": curve(steps, [by_step[s]["loss"] for s in steps], "contrastive loss") if steps else None,
    }


def _thumb(world: Path | None, file_name: str) -> str | None:
    if world is None or not (world / "images" / file_name).is_file():
        return None
    image = load_image(world / "images" / file_name)
    return image_data_uri(image.resize((96, 96), Image.NEAREST))


CURVES = {
    "reward": ("sample/reward", "greedy/reward"),
    "caption length": ("sample/length",),
    "loss": ("loss",),
}


def _captioning(results: list[dict], world: Path | None, n: int = 6) -> dict[str, Any]:
    """The metric table, and the first `n` images with every model's caption side by side."""
    rows = [{"name": r["name"], **headline(r)} for r in results]
    preds = {r["name"]: {p["image_id"]: p["caption"] for p in read_json(r["predictions"])} for r in results}
    names = {}
    if world is not None and (world / "captions.json").is_file():
        names = {i: im.file_name for i, im in CocoCaptions(world / "captions.json").images.items()}
    ids = list(next(iter(preds.values())))[:n]
    examples = [
        {
            "img": _thumb(world, names[i]) if i in names else None,
            "captions": {m: p.get(i, "–") for m, p in preds.items()},
        }
        for i in ids
    ]
    return {"columns": list(HEADLINE), "rows": rows, "examples": examples}


def _caption_curves(run: Path) -> list[str]:
    """Reward, caption-length and loss curves of a captioning run (what its log has)."""
    if not (run / "log.jsonl").is_file():
        raise FinevlError(f"{run}: not a training run (no log.jsonl)")
    log = [r for _, r in iter_jsonl(run / "log.jsonl")]
    steps = [r["step"] for r in log]
    plots = []
    for label, keys in CURVES.items():
        series = {k: [r[k] for r in log] for k in keys if all(k in r for r in log)}
        if series and (label != "loss" or not plots):  # SCST's loss says little; MLE has only the loss
            plots.append(curves(steps, series, f"{run.name}: {label}"))
    return plots


VQA_COLUMNS = ["attribute", "count", "relation", "background", "text", "average"]


def _vqa(results: list[dict], world: Path | None, n: int = 4) -> dict[str, Any]:
    """STIC: each model's accuracy per VQA family and description facts, and the first `n`
    images with every model's description side by side."""
    rows = []
    for r in results:
        m = r["metrics"]
        row = {c: m.get(f"accuracy/{c}") for c in VQA_COLUMNS}
        desc = m.get("description", {})
        row |= {
            "description recall": desc.get("recall/all"),
            "description precision": desc.get("precision/all"),
        }
        rows.append({"name": r.get("label", r["model"]), **row})
    described = [
        (row["name"], r.get("description_examples", [])[:n]) for row, r in zip(rows, results, strict=True)
    ]
    files = [e["image"] for e in described[0][1]]
    examples = [
        {
            "img": _thumb(world, Path(f).name),
            "captions": {m: (ex[k]["prediction"] if k < len(ex) else "–") for m, ex in described},
        }
        for k, f in enumerate(files)
    ]
    columns = [*VQA_COLUMNS, "description recall", "description precision"]
    return {"columns": columns, "rows": rows, "examples": examples}


def _region_image(world: Path | None, records: list[dict]) -> str | None:
    if world is None or not (world / records[0]["image"]).is_file():
        return None
    segs = [r["segmentation"] for r in records]
    _, boxes = rle_area_bbox(segs)
    masks = [decode_segmentation(s, *s["size"], records[0]["image"]) for s in segs]
    return image_data_uri(overlay_masks(load_image(world / records[0]["image"]), masks, boxes))


def _regions(results: list[tuple[Path, dict]], world: Path | None, n: int = 3) -> dict[str, Any]:
    """Osprey: each region model's metrics, and for the first `n` images the numbered masks
    with every model's answers about each region."""
    rows = [
        {
            "name": r.get("label", r["model"]),
            **{c: r["metrics"][a].get(b) for c, (a, b) in REGION_HEADLINE.items()},
        }
        for _, r in results
    ]
    answers = {
        row["name"]: [rec for _, rec in iter_jsonl(path.with_name(r["answers"]))]
        for row, (path, r) in zip(rows, results, strict=True)
    }
    first = next(iter(answers.values()))
    images = list(dict.fromkeys(rec["image_id"] for rec in first))[:n]
    examples = []
    for image_id in images:
        objs = [rec for rec in first if rec["image_id"] == image_id]
        per_model = {m: [rec for rec in recs if rec["image_id"] == image_id] for m, recs in answers.items()}
        examples.append(
            {
                "img": _region_image(world, objs),
                "regions": [
                    {
                        "truth": o["short"],
                        "category": o["category"],
                        "answers": {m: recs[k] for m, recs in per_model.items() if k < len(recs)},
                    }
                    for k, o in enumerate(objs)
                ],
            }
        )
    return {"columns": list(REGION_HEADLINE), "rows": rows, "examples": examples}


def _figure(path: Path) -> str | None:
    return image_data_uri(load_image(path)) if path.is_file() else None


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _editing(results: list[tuple[Path, dict]]) -> dict[str, Any]:
    """Editing: the benchmark's table (condition x kind of edit, mean over seeds) and
    before/after figures, of the benchmark's examples and of single `finevl edit` runs."""
    rows, examples = [], []
    for path, res in results:
        if res["task"] == "edit":
            verdict = f"CLIP text loss {res['text_before']:.3f} -> {res['text_after']:.3f}"
            text = f"{res.get('source') or ''} -> {res['target']}"
            examples.append(
                {"img": _figure(path.parent / "before_after.png"), "text": text, "verdict": verdict}
            )
            continue
        for condition, kinds in res["conditions"].items():
            for kind, cell in kinds.items():
                rows.append(
                    {
                        "name": f"{condition} · {kind}",
                        **{c: cell[m]["mean"] if m in cell else None for c, m in SCORE_LABELS.items()},
                    }
                )
        for ex in res["examples"]:
            verdict = (
                f"judge reads {ex.get('judge_reads', '?')}: {_yes(ex['judge'])}"
                f" · second CLIP: {_yes(ex['judge_clip'])}"
                f" · optimised CLIP: {_yes(ex['clip'])}"
            )
            text = f"{ex['condition']}: {ex['source']} -> {ex['target']}"
            examples.append({"img": _figure(path.parent / ex["figure"]), "text": text, "verdict": verdict})
    return {"label": "edits · kind", "columns": list(SCORE_LABELS), "rows": rows, "examples": examples}


def _model_name(predictions: Path) -> str:
    """A row label: the predictions file's name, or its folder's for a generic `preds.json`."""
    return predictions.parent.name.removeprefix("eval_") if predictions.stem == "preds" else predictions.stem


def _results(paths: list[Path], world: Path | None) -> tuple[list[dict], ...]:
    zeroshot, retrieval, captioning, vqa, regions, editing, compose = [], [], [], [], [], [], []
    for path in paths:
        res = read_json(path)
        task = res.get("task") if isinstance(res, dict) else None
        if task == "zeroshot_classification":
            plot = confusion(res["confusion"], res["classes"], res["dataset"]) if "confusion" in res else None
            zeroshot.append({**res, "plot": plot})
        elif task == "zeroshot_retrieval":
            examples = [
                {
                    **ex,
                    "truth_img": _thumb(world, ex["truth"]),
                    "hits": [{**h, "img": _thumb(world, h["file"])} for h in ex["hits"]],
                }
                for ex in res.get("examples", [])
            ]
            retrieval.append({**res, "examples": examples})
        elif task == "finecap":
            captioning.append({**res, "name": _model_name(Path(res["predictions"]))})
        elif task == "vqa":
            vqa.append(res)
        elif task == "region":
            regions.append((path, res))
        elif task in ("edit", "editing"):
            editing.append((path, res))
        elif task == "compositionality":
            compose.append(_compose_table(res))
        else:
            raise FinevlError(
                f"{path}: not a zero-shot, retrieval, compositionality, finecap, vqa, region or editing"
                " result"
                f" (task {task!r})"
            )
    return zeroshot, retrieval, captioning, vqa, regions, editing, compose


def _compose_table(res: dict[str, Any]) -> dict[str, Any]:
    """Rows (category, model accuracy, text-only accuracy, pairs) of a `clip compose` result."""
    pairs = res.get("pairs", {})
    rows = [(c, acc, res["text_only"].get(c), pairs.get(c)) for c, acc in res["metrics"].items()]
    return {"dataset": res.get("dataset"), "model": res.get("model"), "rows": rows}


def write_report(
    out: str | Path,
    results: list[Path],
    run: Path | None = None,
    world: Path | None = None,
    gallery: str | None = None,
    caption_runs: list[Path] | None = None,
) -> dict[str, Any]:
    """Write the report to `out` (self-contained HTML); returns what it holds."""
    if world is not None and not (Path(world) / "images").is_dir():
        raise FinevlError(f"{world}: not a world folder (no images/)")
    zeroshot, retrieval, captioning, vqa, regions, editing, compose = _results(results, world)
    env = Environment(loader=PackageLoader("finevl.report"), autoescape=select_autoescape())
    html = env.get_template("report.html").render(
        run=_run_section(run) if run else None,
        zeroshot=zeroshot,
        retrieval=retrieval,
        compose=compose,
        captioning=_captioning(captioning, world) if captioning else None,
        caption_curves=[c for r in caption_runs or [] for c in _caption_curves(r)],
        vqa=_vqa(vqa, world) if vqa else None,
        regions=_regions(regions, world) if regions else None,
        editing=_editing(editing) if editing else None,
        gallery=gallery,
        world=str(world) if world else None,
    )
    write_text_atomic(out, html)
    return {
        "report": str(out),
        "zeroshot": len(zeroshot),
        "retrieval": len(retrieval),
        "compose": len(compose),
        "captioning": len(captioning),
        "vqa": len(vqa),
        "regions": len(regions),
        "editing": len(editing),
        "run": str(run) if run else None,
    }


def report_command(cfg: ReportConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl report`: `write_report` with the command's settings."""
    claim_output(cfg.out, overwrite)
    return write_report(cfg.out, list(cfg.results), cfg.run, cfg.world, cfg.gallery, list(cfg.caption_run))
