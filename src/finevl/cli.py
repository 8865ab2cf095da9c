"""The `finevl` command: parses arguments and dispatches; the work lives in the library.

User errors (`FinevlError`, and OS errors such as a full disk) print as one line on stderr,
`error: ...`, with exit status 1; Ctrl-C exits 130 after removing temporaries; bad arguments
get click's usage message with exit status 2. Every output goes through
`finevl.data.files.claim_output` before any work (the output policy, docs/cli.md).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from finevl.errors import FinevlError
from finevl.options import config_options
from finevl.train.config import (
    CaptionTrainConfig,
    ClipTrainConfig,
    GrammarTrainConfig,
    ScstConfig,
    TowerTrainConfig,
)
from finevl.train.region.config import RegionEvalConfig, RegionPipelineConfig, RegionTrainConfig
from finevl.train.stic.config import BaseConfig, DiftConfig, DpoConfig, PipelineConfig, PrefsConfig
from finevl.world.config import WorldConfig

app = typer.Typer(
    help="finevl: fine-grained vision-language work around CLIP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
world_app = typer.Typer(help="FineShapes: generate and look at the procedural world.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: check them, train a word tokenizer.", no_args_is_help=True)
app.add_typer(world_app, name="world")
clip_app = typer.Typer(help="CLIP: train, zero-shot, retrieval, retrieval captioning.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(clip_app, name="clip")
index_app = typer.Typer(help="Search: a faiss index of image embeddings on disk.", no_args_is_help=True)
app.add_typer(index_app, name="index")
caption_app = typer.Typer(help="Captioner: MLE, SCST with CLIP reward, generation.", no_args_is_help=True)
app.add_typer(caption_app, name="caption")
grammar_app = typer.Typer(help="Grammar head on CLIP's text tower (SCST reward).", no_args_is_help=True)
app.add_typer(grammar_app, name="grammar")
finecap_app = typer.Typer(help="Fine-grained caption evaluation (FineCapEval-style).", no_args_is_help=True)
app.add_typer(finecap_app, name="finecap")
stic_app = typer.Typer(
    help="STIC: self-training of a vision-language model (LLaVA, DPO).", no_args_is_help=True
)
app.add_typer(stic_app, name="stic")
vqa_app = typer.Typer(help="VQA evaluation of vision-language models.", no_args_is_help=True)
app.add_typer(vqa_app, name="vqa")
region_app = typer.Typer(
    help="Osprey: mask-aware region understanding (conv CLIP tower, region tokens).", no_args_is_help=True
)
app.add_typer(region_app, name="region")

ModelOpt = Annotated[
    str, typer.Option("--model", help="Checkpoint dir (open_clip or HF), preset, or open_clip arch.")
]
WeightsOpt = Annotated[
    Path | None, typer.Option("--weights", help="Weights (.safetensors or open_clip_train .pt).")
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Also write the JSON results here.")]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing outputs (only ones finevl wrote).")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (auto: a GPU if any).")]
DtypeOpt = Annotated[
    str, typer.Option("--dtype", help="auto, float32, bfloat16 or float16 (auto: bf16 on a GPU, else fp32).")
]
OnBad = Annotated[
    str, typer.Option("--on-bad-image", help="'error' stops at a bad image; 'skip' counts and skips it.")
]


def _claim(overwrite: bool, *files: Path | str | None) -> None:
    """The output policy, before any work: each file output may be written (docs/cli.md)."""
    from finevl.data.files import claim_output

    for path in files:
        claim_output(path, overwrite)


def _claim_folder(path: Path | str, overwrite: bool = False) -> None:
    from finevl.data.files import claim_output

    claim_output(path, overwrite, folder=True)


def _clip(model: str, weights: Path | str | None, device: str, dtype: str) -> Any:
    """The CLIP of a command, placed by its --device and --dtype."""
    from finevl.models.clip import load_clip
    from finevl.models.device import placement

    return load_clip(model, weights, *placement(device, dtype))


def _emit(result: dict[str, Any]) -> None:
    """Results go to stdout as JSON; progress and messages go to stderr."""
    typer.echo(json.dumps(result, indent=1))


def _progress(total: int, label: str):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        from finevl import __version__

        typer.echo(__version__)
        raise typer.Exit()


@world_app.command("generate")
@config_options(WorldConfig)
def world_generate(
    config: WorldConfig,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the world into.")],
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (default: all cores).")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing world in --out.")
    ] = False,
) -> None:
    """Generate a FineShapes world: images, COCO files, fine captions, regions, VQA, splits."""
    from finevl.world.generate import generate_world

    with _progress(config.n, "rendering") as bar:
        task = bar.add_task("world", total=config.n)
        summary = generate_world(
            config, out, workers=workers or None, overwrite=overwrite, progress=lambda k: bar.advance(task, k)
        )
    _emit(summary)


@world_app.command("show")
def world_show(
    world: Annotated[Path, typer.Argument(help="A generated world's folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file (default: WORLD/gallery.html).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Images to show.")] = 48,
    split: Annotated[str | None, typer.Option("--split", help="Only this split (train, val, test).")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write an HTML gallery: images, masks overlaid, coarse and fine captions, facts."""
    from finevl.report.gallery import write_gallery

    _claim(overwrite, out or world / "gallery.html")
    _emit(write_gallery(world, out, limit=limit, split=split))


@data_app.command("check")
def data_check(
    folder: Annotated[Path, typer.Argument(help="A dataset folder (COCO files, finecap.json, images/).")],
    on_bad_image: OnBad = "error",
    tokenizer: Annotated[
        Path | None, typer.Option("--tokenizer", help="Also check caption lengths against it.")
    ] = None,
) -> None:
    """Validate a dataset: every record, mask and image; JSON counts out."""
    from finevl.data.check import check_dataset
    from finevl.data.images import ImageLoader

    _emit(check_dataset(folder, ImageLoader(on_bad_image), tokenizer))  # type: ignore[arg-type]


@data_app.command("tokenizer")
def data_tokenizer(
    folder: Annotated[Path, typer.Argument(help="A dataset folder whose text to learn.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the tokenizer.")],
    max_length: Annotated[int, typer.Option("--max-length", help="Longest text, in tokens.")] = 128,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train a word-level tokenizer on a dataset's text; saved as PreTrainedTokenizerFast."""
    from finevl.data.tokenizer import corpus_texts, train_word_tokenizer

    _claim_folder(out, overwrite)

    tok = train_word_tokenizer(corpus_texts(folder), out, max_length=max_length)
    _emit({"tokenizer": str(out), "vocab_size": len(tok), "max_length": max_length})


def _write(result: dict[str, Any], out: Path | None) -> None:
    if out is not None:
        from finevl.data.jsonio import write_json_atomic

        write_json_atomic(out, result)
    _emit(result)


ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")]


def _train(trainer: Any, config: Any, resume: bool) -> None:
    with _progress(config.steps, "training") as bar:
        task = bar.add_task("train", total=config.steps)
        _emit(trainer(config, resume=resume, progress=lambda k: bar.advance(task, k)))


@clip_app.command("train")
@config_options(ClipTrainConfig)
def clip_train(config: ClipTrainConfig, resume: ResumeOpt = False) -> None:
    """Contrastive training (open_clip ClipLoss) on accelerate; CPU, multi-process or GPU."""
    from functools import partial

    from finevl.train.contrastive import train_clip
    from finevl.world.compose import caption_is_false, negative_vocab

    _train(partial(train_clip, check=caption_is_false, default_vocab=negative_vocab()), config, resume)


@clip_app.command("tower")
@config_options(TowerTrainConfig)
def clip_tower(config: TowerTrainConfig, resume: ResumeOpt = False) -> None:
    """Train the image tower on a world's attributes (or a linear probe of it, --freeze):
    what it sees, per attribute; the image side of LiT (then clip train --lock-image)."""
    from finevl.train.tower import train_tower

    _train(train_tower, config, resume)


@clip_app.command("zeroshot")
def clip_zeroshot(
    model: ModelOpt,
    weights: WeightsOpt = None,
    world: Annotated[
        Path | None, typer.Option("--world", help="A FineShapes world (labels from its files).")
    ] = None,
    label: Annotated[
        str, typer.Option("--label", help="shape, color, size, pattern or background.")
    ] = "shape",
    split: Annotated[str, typer.Option("--split", help="Split of the world, or 'all'.")] = "test",
    folder: Annotated[
        Path | None, typer.Option("--folder", help="Or: a folder of class sub-folders.")
    ] = None,
    on_bad_image: OnBad = "error",
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Zero-shot classification with prompt ensembling: acc1, acc5, mean per-class recall."""
    from finevl.apps.zeroshot import TEMPLATES, folder_labels, world_labels, zeroshot_classify
    from finevl.data.images import ImageLoader

    _claim(overwrite, out)

    if (world is None) == (folder is None):
        raise FinevlError("give exactly one of --world or --folder")
    paths, labels, names = (
        world_labels(world, label, None if split == "all" else split) if world else folder_labels(folder)
    )  # type: ignore[arg-type]
    loader = ImageLoader(on_bad_image)  # type: ignore[arg-type]
    clip = _clip(model, weights, device, dtype)
    metrics, acc, classes = zeroshot_classify(
        clip, paths, labels, names, TEMPLATES[label if world else "folder"], loader
    )
    dataset = f"{world}:{label}:{split}" if world else str(folder)
    _write(
        {
            "dataset": dataset,
            "model": model,
            "task": "zeroshot_classification",
            "metrics": metrics,
            "classes": classes,
            "confusion": acc.confusion().tolist(),
            "skipped_images": len(loader.skipped),
        },
        out,
    )


@clip_app.command("retrieval")
def clip_retrieval(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", help="World folder, shards or JSONL pairs.")],
    weights: WeightsOpt = None,
    split: Annotated[str | None, typer.Option("--split", help="Split of a world folder.")] = "test",
    captions: Annotated[
        str, typer.Option("--captions", help="'fine' (one per image) or 'refs' (all).")
    ] = "fine",
    limit: Annotated[int | None, typer.Option("--limit", help="First N images only.")] = None,
    examples: Annotated[
        int, typer.Option("--examples", help="Keep the top-3 images of the first N queries.")
    ] = 0,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Image-text retrieval recall@1/5/10 both ways (CLIP_benchmark definitions)."""
    from finevl.apps.retrieval import retrieval_with_examples
    from finevl.data.imagetext import load_image_text

    _claim(overwrite, out)

    clip = _clip(model, weights, device, dtype)
    dataset = load_image_text(data, clip.image_size, split=split, limit=limit)
    metrics, shown = retrieval_with_examples(clip, dataset, captions, examples)
    _write(
        {
            "dataset": f"{data}:{split}",
            "model": model,
            "task": "zeroshot_retrieval",
            "metrics": metrics,
            "images": len(dataset),
            "examples": shown,
        },
        out,
    )


@clip_app.command("caption")
def clip_caption(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", help="Images to caption (world folder, shards or JSONL).")],
    pool: Annotated[Path, typer.Option("--pool", help="World folder whose captions form the pool.")],
    out: Annotated[Path, typer.Option("--out", help="Predictions, COCO results format.")],
    weights: WeightsOpt = None,
    split: Annotated[str | None, typer.Option("--split", help="Split of --data.")] = "test",
    pool_split: Annotated[str | None, typer.Option("--pool-split", help="Split of --pool.")] = "train",
    pool_captions: Annotated[str, typer.Option("--pool-captions", help="'fine', 'refs' or 'all'.")] = "all",
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Retrieval-based captioning: each image gets the pool caption closest to it."""
    from finevl.apps.retrieval import caption_by_retrieval, caption_pool
    from finevl.data.imagetext import load_image_text
    from finevl.data.jsonio import write_json_atomic

    _claim(overwrite, out)

    clip = _clip(model, weights, device, dtype)
    images = load_image_text(data, clip.image_size, split=split)
    texts = caption_pool(load_image_text(pool, clip.image_size, split=pool_split), pool_captions)
    captions = caption_by_retrieval(clip.embed_pixels(images.images), clip.embed_texts(texts), texts)
    preds = [{"image_id": i, "caption": c} for i, c in zip(images.image_ids, captions, strict=True)]
    write_json_atomic(out, preds)
    _emit({"predictions": str(out), "images": len(preds), "pool": len(texts)})


@clip_app.command("compose")
def clip_compose(
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", help="Results JSON.")],
    weights: WeightsOpt = None,
    world: Annotated[
        Path | None, typer.Option("--world", help="A FineShapes world (pairs made from its scenes).")
    ] = None,
    sugarcrepe: Annotated[
        Path | None, typer.Option("--sugarcrepe", help="Or: SugarCrepe's folder of category JSON files.")
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="The COCO val2017 images of --sugarcrepe.")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split of the world, or 'all'.")] = "test",
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="First N world images / pairs per category.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the world's pairs.")] = 0,
    on_bad_image: OnBad = "error",
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Compositional accuracy (SugarCrepe categories), next to a text-only baseline."""
    from finevl.data.images import ImageLoader
    from finevl.data.sugarcrepe import read_sugarcrepe
    from finevl.eval.compose import compose_eval
    from finevl.world.compose import world_pairs

    _claim(overwrite, out)
    if world is not None and sugarcrepe is not None:
        raise FinevlError(f"{sugarcrepe}: give --world or --sugarcrepe, not both")
    if sugarcrepe is not None and images is None:
        raise FinevlError(f"{sugarcrepe}: --sugarcrepe needs --images (the COCO val2017 folder)")
    if sugarcrepe is None and images is not None:
        raise FinevlError(f"{images}: --images goes with --sugarcrepe")
    if world is None and sugarcrepe is None:
        raise FinevlError("give --world, or --sugarcrepe with --images")
    if world is not None:
        made = world_pairs(world, None if split == "all" else split, limit, seed)
        pairs, extra = made.pairs, {"dropped": made.dropped, "balanced_out": made.balanced_out}
    else:
        pairs, extra = read_sugarcrepe(sugarcrepe, images, limit), {"dropped": {}}  # type: ignore[arg-type]
    loader = ImageLoader(on_bad_image)  # type: ignore[arg-type]
    clip = _clip(model, weights, device, dtype)
    paths = len({p.image for p in pairs})
    with _progress(paths, "embedding") as bar:
        task = bar.add_task("images", total=paths)
        result = compose_eval(clip, pairs, loader, lambda k: bar.advance(task, k))
    dataset = f"{world}:{split}:seed{seed}" if world else f"sugarcrepe:{sugarcrepe}"
    _write(
        {"dataset": dataset, "model": model, "task": "compositionality", **result, **extra},
        out,
    )


@caption_app.command("train")
@config_options(CaptionTrainConfig)
def caption_train(config: CaptionTrainConfig, resume: ResumeOpt = False) -> None:
    """MLE training of a captioner on the references (a world's coarse captions)."""
    from finevl.train.mle import train_captioner

    _train(train_captioner, config, resume)


@caption_app.command("scst")
@config_options(ScstConfig)
def caption_scst(config: ScstConfig, resume: ResumeOpt = False) -> None:
    """Self-critical RL: CLIP-S, CIDEr-D, RefCLIP-S and grammar rewards, weighted."""
    from finevl.train.scst import train_scst

    _train(train_scst, config, resume)


@grammar_app.command("train")
@config_options(GrammarTrainConfig)
def grammar_train(config: GrammarTrainConfig, resume: ResumeOpt = False) -> None:
    """Fine-tune CLIP's text tower with a grammar head (contrastive + grammar loss)."""
    from finevl.train.grammar import train_grammar

    _train(train_grammar, config, resume)


@caption_app.command("generate")
def caption_generate(
    model: Annotated[Path, typer.Option("--model", help="Captioner folder (a run's checkpoint/model).")],
    data: Annotated[Path, typer.Option("--data", help="Images: a world folder, shards or JSONL pairs.")],
    out: Annotated[Path, typer.Option("--out", help="Predictions, COCO results format.")],
    split: Annotated[str | None, typer.Option("--split", help="Split of --data.")] = "test",
    decoding: Annotated[str, typer.Option("--decoding", help="greedy, beam or sample.")] = "greedy",
    beams: Annotated[int, typer.Option("--beams", help="Beam width.")] = 3,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="At most 64.")] = 20,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N images.")] = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Caption images with a trained captioner (its own CLIP computes the image tokens);
    on N processes under `accelerate launch`."""
    from finevl.apps.captioning import caption_dataset
    from finevl.models.captioner import load_captioner

    _claim(overwrite, out)

    bundle = load_captioner(model)
    clip = _clip(bundle.model.config.clip_model, None, device, dtype)
    bundle.model.to(clip.device, clip.dtype)
    result = caption_dataset(bundle, clip, data, out, split, limit, decoding, beams, max_new_tokens)
    if result is not None:  # the main process
        _emit(result)


@finecap_app.command("eval")
def finecap_eval(
    pred: Annotated[Path, typer.Option("--pred", help="Predictions, COCO results format.")],
    ann: Annotated[
        Path,
        typer.Option(
            "--ann", help="A world-style folder (captions.json, finecap.json) or a FineCapEval CSV."
        ),
    ],
    clip: Annotated[
        str | None, typer.Option("--clip", help="Frozen CLIP for CLIP-S, RefCLIP-S and retrieval.")
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Folder of the CSV's images (for --clip).")
    ] = None,
    meteor: Annotated[bool, typer.Option("--meteor/--no-meteor", help="METEOR needs Java.")] = True,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Score generated captions: n-gram metrics per criterion, fact P/R/F1, CLIP-S, R@k."""
    from finevl.eval.caption import evaluate_captions

    _claim(overwrite, out)
    if images is not None and ann.is_dir():
        raise FinevlError(f"{images}: --images is for a FineCapEval CSV --ann, not a world folder")
    result = evaluate_captions(
        pred, ann, _clip(clip, None, device, dtype) if clip else None, meteor=meteor, images=images
    )
    if out:
        from finevl.data.jsonio import write_json_atomic

        write_json_atomic(out, result)
    _emit(result)


@stic_app.command("base")
@config_options(BaseConfig)
def stic_base(config: BaseConfig, resume: ResumeOpt = False) -> None:
    """The SFT base: a LLaVA from a CLIP tower and a fresh Llama; LM, alignment, instructions."""
    from finevl.train.stic.base import train_base

    steps = config.lm_steps + config.align_steps + config.sft_steps
    with _progress(steps, "base model") as bar:
        task = bar.add_task("train", total=steps)
        _emit(train_base(config, resume=resume, progress=lambda k: bar.advance(task, k)))


@stic_app.command("prefs")
@config_options(PrefsConfig)
def stic_prefs(config: PrefsConfig, overwrite: OverwriteOpt = False) -> None:
    """Stage 1 data: preferred (step-by-step) and dispreferred (hallucination/corruption) answers."""
    from finevl.train.stic.prefs import make_preferences

    _claim(overwrite, config.out)

    with _progress(2 * config.images, "answers") as bar:
        task = bar.add_task("generate", total=2 * config.images)
        _emit(make_preferences(config, progress=lambda k: bar.advance(task, k)))


@stic_app.command("dpo")
@config_options(DpoConfig)
def stic_dpo(config: DpoConfig) -> None:
    """Stage 1 training: TRL DPO (sigmoid + SFT term) with a LoRA adapter; merged model out."""
    from finevl.train.stic.dpo import train_dpo

    with _progress(None, "DPO steps") as bar:
        task = bar.add_task("dpo", total=None)
        _emit(train_dpo(config, progress=lambda k: bar.advance(task, k)))


@stic_app.command("dift")
@config_options(DiftConfig)
def stic_dift(config: DiftConfig, resume: ResumeOpt = False) -> None:
    """Stage 2: fine-tune with the model's own image descriptions infused into the prompts."""
    from finevl.train.stic.dift import train_dift

    _train(train_dift, config, resume)


@stic_app.command("quickstart")
@config_options(PipelineConfig)
def stic_quickstart(config: PipelineConfig) -> None:
    """A small STIC run: base, preferences, DPO, DIFT, each evaluated (results/vqa-*.json)."""
    from finevl.data.files import claim_run_folder
    from finevl.data.jsonio import write_json_atomic
    from finevl.eval.vqa import evaluate_on_world
    from finevl.train.stic.pipeline import run_base, stic_variant

    claim_run_folder(config.out)
    with _progress(None, "STIC pipeline") as bar:
        task = bar.add_task("stages", total=None)
        base, instructions = run_base(config)
        bar.advance(task)
        models = {"base": base, **stic_variant(config, base, instructions, "stic")}
        results = {}
        for label, model in models.items():
            res, _ = evaluate_on_world(model, config.data, "test", config.eval_images, label=f"STIC {label}")
            write_json_atomic(Path(config.out) / "results" / f"vqa-{label}.json", res)
            results[label] = {k: v for k, v in res["metrics"].items() if k.startswith("accuracy/")}
            bar.advance(task)
    _emit({"out": config.out, "models": models, "accuracy": results})


@vqa_app.command("eval")
def vqa_eval(
    model: Annotated[Path, typer.Option("--model", help="A LLaVA-family model folder.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="A FineShapes world (its VQA families + descriptions).")
    ] = None,
    questions: Annotated[
        Path | None, typer.Option("--questions", help="LLaVA-style question JSONL (instead of --data).")
    ] = None,
    images: Annotated[Path | None, typer.Option("--images", help="Folder of the questions' images.")] = None,
    split: Annotated[str, typer.Option("--split", help="Split of --data.")] = "test",
    limit: Annotated[int | None, typer.Option("--limit", help="First N images of the split.")] = None,
    answers: Annotated[Path | None, typer.Option("--answers", help="Write answers (LLaVA JSONL).")] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Row name in reports (default: from the path).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest answer.")] = 64,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Exact-match accuracy per question family on normalised answers (+ description facts)."""
    from finevl.data.jsonio import dumps, write_json_atomic, write_text_atomic
    from finevl.eval.vqa import evaluate_on_world, evaluate_vqa, model_label, read_questions
    from finevl.models.device import placement
    from finevl.models.lvlm import load_lvlm

    _claim(overwrite, out, answers)

    if (data is None) == (questions is None):
        raise FinevlError("give either --data (a world) or --questions (with --images)")
    if max_new_tokens < 1:
        raise FinevlError("--max-new-tokens must be >= 1")
    where, precision = placement(device, dtype)
    qs = read_questions(questions) if questions is not None else []
    # on the CPU, auto keeps the checkpoint's own dtype (as the STIC pipeline loads it)
    lvlm = load_lvlm(model, None if dtype == "auto" and where.type == "cpu" else precision, where)
    if data is not None:
        result, rows = evaluate_on_world(model, data, split, limit, label, max_new_tokens, lvlm=lvlm)
    else:
        metrics, rows = evaluate_vqa(lvlm, qs, images or questions.parent, None, max_new_tokens)
        name = label or model_label(model)
        result = {
            "dataset": str(questions),
            "model": str(model),
            "label": name,
            "task": "vqa",
            "metrics": metrics,
        }
    if answers and rows:
        write_text_atomic(answers, "".join(dumps(r) + "\n" for r in rows))
    if out:
        write_json_atomic(out, result)
    _emit(result)


@region_app.command("train")
@config_options(RegionTrainConfig)
def region_train(config: RegionTrainConfig, resume: ResumeOpt = False) -> None:
    """One stage: lm (new model, world text), 1 projector, 2 mask extractor, 3 end-to-end."""
    from finevl.train.region.stages import train_region_stage

    _train(train_region_stage, config, resume)


@region_app.command("eval")
@config_options(RegionEvalConfig)
def region_eval(config: RegionEvalConfig, overwrite: OverwriteOpt = False) -> None:
    """Classification (SS, S-IoU), open-vocab segmentation (mIoU, PQ), captioning, description."""
    from finevl.eval.region import answers_file, evaluate_regions, write_region_results

    _claim(overwrite, config.out, answers_file(config.out))

    with _progress(None, "region questions") as bar:
        task = bar.add_task("ask", total=None)
        result, records = evaluate_regions(config, progress=lambda k: bar.advance(task, k))
    write_region_results(config.out, result, records)
    _emit(result)


@region_app.command("ask")
def region_ask(
    model: Annotated[Path, typer.Option("--model", help="Region model folder.")],
    image: Annotated[Path, typer.Option("--image", help="The image.")],
    mask: Annotated[list[Path], typer.Option("--mask", help="A mask image (non-zero = inside); repeat.")],
    question: Annotated[
        str, typer.Option("--question", help="Names masks as <region1>, <region2>, ... (or <mask><pos>).")
    ],
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest answer.")] = 64,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Ask one question about regions of an image, each given as a mask."""
    from finevl.eval.region import ask_regions

    _emit(ask_regions(model, image, mask, question, max_new_tokens, device, dtype))


@region_app.command("quickstart")
@config_options(RegionPipelineConfig)
def region_quickstart(config: RegionPipelineConfig) -> None:
    """A small Osprey run: LM, stages 1-3, evaluated (results/region.json + answers)."""
    from finevl.data.files import claim_run_folder
    from finevl.eval.region import evaluate_regions, write_region_results
    from finevl.train.region.pipeline import run_chain

    claim_run_folder(config.out)
    with _progress(None, "region pipeline") as bar:
        task = bar.add_task("stages", total=None)
        model = run_chain(config)
        bar.advance(task)
        eval_cfg = RegionEvalConfig(
            model=model,
            data=config.data,
            out=str(Path(config.out) / "results" / "region.json"),
            limit=config.eval_images,
            label="Osprey (mask + spatial token)",
            dtype="float32",  # as trained: the quickstart's figures do not depend on the machine
        )
        result, records = evaluate_regions(eval_cfg, progress=lambda k: bar.advance(task, k))
    write_region_results(eval_cfg.out, result, records)
    _emit({"model": model, "metrics": result["metrics"]})


def _edit_report(advance: Any, snaps: Path) -> Any:
    """The edit's per-step callback: the progress bar, and the snapshots under `snaps`."""

    def report(step: int, losses: dict, snap: Any) -> None:
        advance()
        if snap is not None:
            snaps.mkdir(parents=True, exist_ok=True)
            snap.save(snaps / f"step_{step + 1:05d}.png")

    return report


def _edit_input(path: Path) -> Any:
    """An image `finevl edit` can work on: readable, and at least MIN_SIDE px a side."""
    from finevl.apps.editing import MIN_SIDE
    from finevl.data.images import load_image

    picture = load_image(path)
    if min(picture.size) < MIN_SIDE:
        w, h = picture.size
        raise FinevlError(f"{path}: the image is {w}x{h}; finevl edit needs at least {MIN_SIDE} px a side")
    return picture


@app.command("edit")
def edit(
    model: ModelOpt,
    image: Annotated[Path, typer.Option("--image", help="The image to edit.")],
    target: Annotated[str, typer.Option("--target", help="Text the edit moves toward.")],
    source: Annotated[
        str | None, typer.Option("--source", help="Text of the image as it is: a directional edit.")
    ] = None,
    mask: Annotated[Path | None, typer.Option("--mask", help="Mask image: where the edit may act.")] = None,
    candidate: Annotated[
        list[Path] | None, typer.Option("--candidate", help="Rank these edited images instead; repeat.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder: edited.png, before_after.png, JSON.")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Optimisation steps.")] = 100,
    param: Annotated[
        str,
        typer.Option("--param", help="residual (free pixels, 1/scale resolution) or color (a colour map)."),
    ] = "residual",
    scale: Annotated[int, typer.Option("--scale", help="The residual is 1/scale of the image side.")] = 4,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate of the edit's parameters.")] = 0.3,
    views: Annotated[int, typer.Option("--views", help="Random views per step (0: none).")] = 8,
    keep_outside: Annotated[float, typer.Option("--keep-outside", help="Preservation weight.")] = 10.0,
    save_every: Annotated[int, typer.Option("--save-every", help="Save the image every N steps.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random views.")] = 0,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Edit an image toward a text with CLIP (or rank candidate edits by the same objective)."""
    from finevl.apps.editing import EditSettings, before_after, edit_image, rank_candidates
    from finevl.data.files import atomic_dir
    from finevl.data.jsonio import write_json_atomic
    from finevl.data.regions import read_mask_png

    settings = EditSettings(
        steps=steps, param=param, scale=scale, lr=lr, views=views, keep_outside=keep_outside, seed=seed
    )
    if save_every < 0:
        raise FinevlError(f"--save-every must be >= 0, not {save_every}")
    if candidate and mask:
        raise FinevlError("--mask does not apply to --candidate ranking (candidates are whole images)")
    if not candidate and out is None:
        raise FinevlError("--out (a folder for the edit) is required")
    if out is not None:
        _claim_folder(out, overwrite)
    picture = _edit_input(image)
    area = read_mask_png(mask) if mask else None
    clip = _clip(model, None, device, dtype)
    if candidate:
        ranked = rank_candidates(
            clip, picture, [_edit_input(c) for c in candidate], target, source, keep_outside
        )
        result = {
            "task": "edit_ranking",
            "ranking": [{**r, "image": str(candidate[r["index"]])} for r in ranked],
        }
        if out is not None:
            with atomic_dir(out) as tmp:
                write_json_atomic(tmp / "edit.json", result)
    else:
        assert out is not None
        with atomic_dir(out) as tmp:  # the folder appears whole, or not at all
            with _progress(steps, "edit") as bar:
                task = bar.add_task("edit", total=steps)
                report = _edit_report(lambda: bar.advance(task), tmp / "steps")
                edited, summary = edit_image(
                    clip, picture, target, source, area, settings, report, save_every
                )
            edited.save(tmp / "edited.png")
            before_after(picture, edited).save(tmp / "before_after.png")
            result = {"task": "edit", "image": str(image), "target": target, "source": source, **summary}
            write_json_atomic(tmp / "edit.json", result)
    _emit(result)


@app.command("score")
def score(
    model: ModelOpt,
    pairs: Annotated[
        Path, typer.Argument(help="JSON/JSONL rows {image, caption, refs?} or CSV image,caption,refs.")
    ],
    weights: WeightsOpt = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Prepended to candidates and references (Hessel et al.).")
    ] = "A photo depicts ",
    on_bad_image: OnBad = "error",
    out: OutOpt = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write per-item scores as CSV.")] = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """CLIP-S (2.5 * max(cos, 0)) and RefCLIP-S per image-caption pair, and their means."""
    from finevl.apps.score import read_score_input, score_rows, write_items_csv
    from finevl.data.images import ImageLoader

    _claim(overwrite, out, csv_out)

    rows = read_score_input(pairs)
    result = score_rows(_clip(model, weights, device, dtype), rows, prefix, ImageLoader(on_bad_image))  # type: ignore[arg-type]
    if result is None:  # not the main process (accelerate launch): it wrote its shares
        return
    if csv_out is not None:
        write_items_csv(csv_out, result["items"])
    _write({"dataset": str(pairs), "model": model, "task": "clip_score", **result}, out)


@index_app.command("build")
def index_build(
    model: ModelOpt,
    images: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", help="Index folder to write.")],
    weights: WeightsOpt = None,
    on_bad_image: OnBad = "error",
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Embed a collection's images and keep them in a faiss index on disk."""
    from finevl.apps.search import build_index, collect_images
    from finevl.data.images import ImageLoader

    _claim_folder(out, overwrite)

    paths = collect_images(images)
    clip = _clip(model, weights, device, dtype)
    loader = ImageLoader(on_bad_image)  # type: ignore[arg-type]
    spec = str(Path(model).resolve()) if Path(model).exists() else model  # queries reload it from anywhere
    result = build_index(clip, spec, paths, out, loader, weights=str(weights.resolve()) if weights else None)
    if result is not None:  # the main process (others, under accelerate launch, return None)
        _emit(result)


@index_app.command("query")
def index_query(
    index: Annotated[Path, typer.Argument(help="Index folder made by `finevl index build`.")],
    text: Annotated[list[str] | None, typer.Option("--text", help="Text query (repeatable).")] = None,
    image: Annotated[list[Path] | None, typer.Option("--image", help="Image query (repeatable).")] = None,
    k: Annotated[int, typer.Option("-k", help="Results per query.")] = 5,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Nearest images to text or image queries, with cosine scores."""
    from finevl.apps.search import open_index, query_index
    from finevl.data.images import load_image

    if not text and not image:
        raise FinevlError("give at least one --text or --image query")
    faiss_index, meta = open_index(index)
    clip = _clip(meta["model"], meta.get("weights"), device, dtype)
    queries = [*(text or []), *(str(p) for p in image or [])]
    feats = []
    if text:
        feats.append(clip.embed_texts(list(text)))
    if image:
        feats.append(clip.embed_images([load_image(p) for p in image]))
    import torch

    hits = query_index(faiss_index, meta, torch.cat(feats).numpy(), k)
    _emit(
        {
            "index": str(index),
            "results": [{"query": q, "hits": h} for q, h in zip(queries, hits, strict=True)],
        }
    )


@app.command("moderate")
def moderate(
    model: ModelOpt,
    images: Annotated[list[Path] | None, typer.Argument(help="Images and/or folders to check.")] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy YAML (default: the FineShapes demo).")
    ] = None,
    weights: WeightsOpt = None,
    calibrate: Annotated[
        Path | None, typer.Option("--calibrate", help="World folder or labels JSONL to fit thresholds on.")
    ] = None,
    calibrate_split: Annotated[
        str, typer.Option("--calibrate-split", help="World split for calibration.")
    ] = "val",
    evaluate: Annotated[
        Path | None, typer.Option("--evaluate", help="World folder or labels JSONL to report P/R on.")
    ] = None,
    evaluate_split: Annotated[
        str, typer.Option("--evaluate-split", help="World split for evaluation.")
    ] = "test",
    save_policy: Annotated[
        Path | None, typer.Option("--save-policy", help="Write the calibrated policy here.")
    ] = None,
    on_bad_image: OnBad = "error",
    out: OutOpt = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Per-image scores and flags as CSV.")] = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Flag images by natural-language criteria (prompts vs contrast prompts), thresholds
    calibrated on a small labelled set; precision and recall where labels are given."""
    from finevl.apps import moderation as mod
    from finevl.apps.search import collect_images
    from finevl.data.images import ImageLoader

    _claim(overwrite, out, csv_out, save_policy)
    pol = mod.load_policy(policy or mod.DEMO_POLICY)
    clip = _clip(model, weights, device, dtype)
    loader = ImageLoader(on_bad_image)  # type: ignore[arg-type]
    result: dict[str, Any] = {"model": model, "task": "moderation"}
    if calibrate is not None:
        paths, labels = mod.labelled_set(calibrate, pol, calibrate_split)
        scores, truth, _ = mod.score_paths(clip, pol, paths, loader, labels)
        pol = mod.calibrate(pol, scores, truth)
        if save_policy:
            mod.save_policy(pol, save_policy)
    if evaluate is not None:
        paths, labels = mod.labelled_set(evaluate, pol, evaluate_split)
        scores, truth, _ = mod.score_paths(clip, pol, paths, loader, labels)
        result["metrics"] = mod.evaluate(pol, scores, truth)
    if images:
        scores, _, names = mod.score_paths(clip, pol, collect_images(images), loader)
        result["images"] = mod.flag_images(pol, scores, names)
    if csv_out is not None and "images" in result:
        mod.write_flags_csv(csv_out, pol, result["images"])
    result["thresholds"] = {c.name: c.threshold for c in pol.criteria}
    _write(result, out)


@app.command("report")
def report(
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
    results: Annotated[
        list[Path] | None, typer.Argument(help="Zero-shot, retrieval and finecap result JSON files.")
    ] = None,
    run: Annotated[Path | None, typer.Option("--run", help="A CLIP training run folder.")] = None,
    world: Annotated[
        Path | None, typer.Option("--world", help="The world the results came from (thumbnails).")
    ] = None,
    gallery: Annotated[
        str | None, typer.Option("--gallery", help="Link to the world's gallery page.")
    ] = None,
    caption_run: Annotated[
        list[Path] | None, typer.Option("--caption-run", help="Captioning runs whose curves to plot.")
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """One HTML report from saved results: training curve, zero-shot, retrieval, captioning."""
    from finevl.report.report import write_report

    _claim(overwrite, out)

    _emit(write_report(out, list(results or []), run, world, gallery, caption_run))


def main() -> None:
    """Entry point: run the app, turning user errors into one line and a non-zero exit."""
    # the command's own progress bars and messages only, not the libraries' per-load chatter
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # TRL calls transformers' renamed APIs (gradient_checkpointing -> activation_...)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl)\.")
    sys.exit(run_app())


def run_app(args: list[str] | None = None) -> int:
    """Run the app on `args` (default: sys.argv); the exit status (docs/cli.md): 0 done,
    1 a user error (one `error:` line on stderr), 2 a usage error, 130 interrupted (Ctrl-C)."""
    from finevl.data.files import remove_live_temps

    try:
        app(args=args)  # standalone: usage errors, --help and Ctrl-C end in SystemExit
        return 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
        if code == 130:
            remove_live_temps()
            _error("interrupted")
        return code
    except FinevlError as e:
        _error(str(e))
        return 1
    except OSError as e:  # unwritable folder, full disk, ...: the user's to fix, said in one line
        where = f"{e.filename}: " if e.filename else ""
        _error(f"{where}{e.strerror or e}")
        return 1
    finally:
        remove_live_temps()


def _error(message: str) -> None:
    """The one error line: `error: ` and the message, on stderr."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)


if __name__ == "__main__":
    main()
