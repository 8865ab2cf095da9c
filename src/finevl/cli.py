"""The `finevl` command: parses arguments and dispatches; the work lives in the library.

User errors (`FinevlError`) print as one line on stderr with exit status 1; bad arguments
get click's usage message with exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from finevl.errors import FinevlError
from finevl.options import config_options
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
app.add_typer(data_app, name="data")

OnBad = Annotated[
    str, typer.Option("--on-bad-image", help="'error' stops at a bad image; 'skip' counts and skips it.")
]


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
) -> None:
    """Write an HTML gallery: images, masks overlaid, coarse and fine captions, facts."""
    from finevl.report.gallery import write_gallery

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
) -> None:
    """Train a word-level tokenizer on a dataset's text; saved as PreTrainedTokenizerFast."""
    from finevl.data.tokenizer import corpus_texts, train_word_tokenizer

    tok = train_word_tokenizer(corpus_texts(folder), out, max_length=max_length)
    _emit({"tokenizer": str(out), "vocab_size": len(tok), "max_length": max_length})


def main() -> None:
    """Entry point: run the app, turning user errors into one line and a non-zero exit."""
    try:
        app()
    except FinevlError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
