"""`finevl vqa eval`: a vision-language model on VQA benchmarks.

FineShapes: each VQA family of a world split (attribute, count, relation, background, text
reading) is a benchmark, scored by exact match on normalised answers, and a description
benchmark is scored by exact fact precision / recall (`parse_caption` against the scene).
Any LLaVA-style question JSONL (`{"question_id", "image", "text"}`, with `"answer"` and
`"category"` when known) runs the same way; its answers are written in LLaVA's answer format.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from finevl.data.files import claim_outputs
from finevl.data.formats import in_split, read_finecap
from finevl.data.images import ImageCache
from finevl.data.jsonio import dumps, iter_jsonl, write_json_atomic, write_result, write_text_atomic
from finevl.errors import FinevlError
from finevl.eval.config import VqaEvalConfig
from finevl.language.facts import scene_from_record
from finevl.metrics.finecap import FactScores
from finevl.metrics.vqa import VqaAccuracy
from finevl.models.device import dtype_name
from finevl.models.lvlm import Lvlm
from finevl.train.stic.config import PipelineConfig

DESCRIBE = "Describe the image in detail."


class Question(BaseModel):
    """One LLaVA-style question; `answer` and `category` are optional."""

    question_id: int | str
    image: str
    text: str = Field(min_length=1)
    answer: str | None = None
    category: str = "all"


def read_questions(path: str | Path) -> list[Question]:
    """LLaVA-style question JSONL (FineShapes' `vqa.jsonl` reads too: `question`/`family`)."""
    out = []
    for line, r in iter_jsonl(path):
        r = {"text": r.get("question"), "category": r.get("family", "all"), **r}
        if r.get("answer") is not None:
            r["answer"] = str(r["answer"])
        try:
            out.append(Question.model_validate(r))
        except ValidationError as e:
            raise FinevlError(f"{path}:{line}: not a question record ({str(e).splitlines()[0]})") from None
    if not out:
        raise FinevlError(f"{path}: no questions")
    return out


def world_questions(
    folder: str | Path, split: str, limit: int | None
) -> tuple[list[Question], list[tuple[str, Any]]]:
    """The VQA questions of the first `limit` images of a world split, and (file, scene) of each."""
    if limit is not None and limit < 1:
        raise FinevlError(f"--limit must be >= 1, not {limit}")
    records = read_finecap(Path(folder) / "finecap.json")
    ids = in_split(folder, split, [r.image_id for r in records])[:limit]
    by_id = {r.image_id: r for r in records}
    scenes = [(f"images/{by_id[i].file_name}", scene_from_record(by_id[i].scene)) for i in ids]
    wanted = {f for f, _ in scenes}
    questions = [q for q in read_questions(Path(folder) / "vqa.jsonl") if q.image in wanted]
    return questions, scenes


def evaluate_vqa(
    lvlm: Lvlm,
    questions: list[Question],
    image_root: str | Path,
    scenes: list[tuple[str, Any]] | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, answers): greedy answers; accuracy per category where answers are known; on
    FineShapes the description benchmark over `scenes` (image path, scene)."""
    images = ImageCache(image_root)
    pics = [images(q.image) for q in questions]
    preds = lvlm.generate(
        pics, [q.text for q in questions], max_new_tokens, batch_size=batch_size, progress=progress
    )
    accuracy = VqaAccuracy()
    for q, p in zip(questions, preds, strict=True):
        if q.answer is not None:
            accuracy.update(p, q.answer, q.category)
    answers = [
        {"question_id": q.question_id, "prompt": q.text, "text": p, "answer_id": k, "model_id": lvlm.name}
        for k, (q, p) in enumerate(zip(questions, preds, strict=True))
    ]
    metrics: dict[str, Any] = accuracy.compute() if accuracy.total else {}
    if scenes:
        described = lvlm.generate(
            [images(f) for f, _ in scenes], [DESCRIBE] * len(scenes), max_new_tokens, batch_size=batch_size
        )
        facts = FactScores()
        for text, (_, scene) in zip(described, scenes, strict=True):
            facts.update(text, scene)
        metrics["description"] = {**facts.compute(), "examples": described[:5]}
    return metrics, answers


def model_label(model: str | Path) -> str:
    """A row name for a model folder: its path without finevl's `checkpoint/model` tail."""
    parts = [p for p in Path(model).parts if p not in ("model", "checkpoint")]
    return "/".join(parts[-2:]) or str(model)


def evaluate_on_world(
    model: str | Path,
    world: str | Path,
    split: str = "test",
    limit: int | None = None,
    label: str | None = None,
    max_new_tokens: int = 64,
    progress: Callable[[int], None] | None = None,
    lvlm: Lvlm | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`finevl vqa eval` on a FineShapes split: (a CLIP_benchmark-shaped result with every VQA
    family, the description benchmark and a few examples; the answers, LLaVA format). `lvlm`:
    the model at `model` already loaded (and placed), else it is loaded on the CPU."""
    from finevl.models.lvlm import load_lvlm

    lvlm = lvlm or load_lvlm(model)
    questions, scenes = world_questions(world, split, limit)
    metrics, answers = evaluate_vqa(lvlm, questions, world, scenes, max_new_tokens, progress=progress)
    examples = [
        {
            "image": q.image,
            "question": q.text,
            "answer": q.answer,
            "prediction": a["text"],
            "family": q.category,
        }
        for q, a in list(zip(questions, answers, strict=True))[:8]
    ]
    result = {
        "dataset": f"{world}:{split}",
        "model": str(model),
        "label": label or model_label(model),
        "task": "vqa",
        "dtype": dtype_name(lvlm.model.dtype),
        "metrics": metrics,
        "examples": examples,
        "description_examples": [
            {"image": f, "prediction": p}
            for (f, _), p in zip(scenes, metrics.get("description", {}).get("examples", []), strict=False)
        ],
    }
    return result, answers


def vqa_command(cfg: VqaEvalConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl vqa eval`: a LLaVA on a world's questions or a question file; the results
    (also to `cfg.out`) and the answers (to `cfg.answers`)."""
    from finevl.models.device import placement
    from finevl.models.lvlm import load_lvlm

    claim_outputs(overwrite, cfg.out, cfg.answers)
    where, precision = placement(cfg.device, cfg.dtype)
    questions = read_questions(cfg.questions) if cfg.questions is not None else []
    lvlm = load_lvlm(cfg.model, precision, where)
    if cfg.data is not None:
        result, rows = evaluate_on_world(
            cfg.model, cfg.data, cfg.split, cfg.limit, cfg.label, cfg.max_new_tokens, lvlm=lvlm
        )
    else:
        images = cfg.images or cfg.questions.parent  # type: ignore[union-attr]
        metrics, rows = evaluate_vqa(lvlm, questions, images, None, cfg.max_new_tokens)
        label = cfg.label or model_label(cfg.model)
        result = {
            "dataset": str(cfg.questions),
            "model": str(cfg.model),
            "label": label,
            "task": "vqa",
            "dtype": dtype_name(lvlm.model.dtype),
            "metrics": metrics,
        }
    if cfg.answers and rows:
        write_text_atomic(cfg.answers, "".join(dumps(r) + "\n" for r in rows))
    return write_result(result, cfg.out)


def stic_quickstart(cfg: PipelineConfig, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """`finevl stic quickstart`: base, preferences, DPO and DIFT, each model evaluated on the
    world's test split (`OUT/results/vqa-*.json`)."""
    from finevl.data.files import claim_run_folder
    from finevl.train.stic.pipeline import run_base, stic_variant

    claim_run_folder(cfg.out)
    base, instructions = run_base(cfg)
    models = {"base": base, **stic_variant(cfg, base, instructions, "stic")}
    accuracy = {}
    for label, model in models.items():
        result, _ = evaluate_on_world(model, cfg.data, "test", cfg.eval_images, label=f"STIC {label}")
        write_json_atomic(Path(cfg.out) / "results" / f"vqa-{label}.json", result)
        accuracy[label] = {k: v for k, v in result["metrics"].items() if k.startswith("accuracy/")}
        if progress:
            progress(1)
    return {"out": cfg.out, "models": models, "accuracy": accuracy}
