"""`write_report`: one HTML page from saved artefacts: the world's gallery link, a CLIP
run's curve, zero-shot tables with confusion matrices, retrieval tables and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image

from finevl.data.images import load_image
from finevl.data.jsonio import iter_jsonl, read_json, write_text_atomic
from finevl.errors import FinevlError
from finevl.report.encode import image_data_uri
from finevl.report.plots import confusion, curve


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


def _results(paths: list[Path], world: Path | None) -> tuple[list[dict], list[dict]]:
    zeroshot, retrieval = [], []
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
        else:
            raise FinevlError(f"{path}: not a zero-shot or retrieval result (task {task!r})")
    return zeroshot, retrieval


def write_report(
    out: str | Path,
    results: list[Path],
    run: Path | None = None,
    world: Path | None = None,
    gallery: str | None = None,
) -> dict[str, Any]:
    """Write the report to `out` (self-contained HTML); returns what it holds."""
    zeroshot, retrieval = _results(results, world)
    env = Environment(loader=PackageLoader("finevl.report"), autoescape=select_autoescape())
    html = env.get_template("report.html").render(
        run=_run_section(run) if run else None,
        zeroshot=zeroshot,
        retrieval=retrieval,
        gallery=gallery,
        world=str(world) if world else None,
    )
    write_text_atomic(out, html)
    return {
        "report": str(out),
        "zeroshot": len(zeroshot),
        "retrieval": len(retrieval),
        "run": str(run) if run else None,
    }
