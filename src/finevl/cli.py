"""The `finevl` command: a table of commands, each generated from its settings dataclass
(flags, help and validation live there) and run by the library function it names; results
go to stdout as JSON, progress and messages to stderr.

User errors (`FinevlError`, and OS errors such as a full disk) print as one line on stderr,
`error: ...`, with exit status 1; Ctrl-C exits 130 after removing temporaries; bad arguments
get click's usage message with exit status 2. Every command claims its outputs
(`finevl.data.files.claim_output`) before any work (the output policy, docs/cli.md).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any

import typer

from finevl.errors import FinevlError
from finevl.options import config_options

GROUPS = {
    "world": "FineShapes: generate and look at the procedural world.",
    "data": "Datasets: check them, train a word tokenizer.",
    "clip": "CLIP: train, zero-shot, retrieval, retrieval captioning.",
    "index": "Search: a faiss index of image embeddings on disk.",
    "caption": "Captioner: MLE, SCST with CLIP reward, generation.",
    "grammar": "Grammar head on CLIP's text tower (SCST reward).",
    "finecap": "Fine-grained caption evaluation (FineCapEval-style).",
    "stic": "STIC: self-training of a vision-language model (LLaVA, DPO).",
    "vqa": "VQA evaluation of vision-language models.",
    "region": "Osprey: mask-aware region understanding (conv CLIP tower, region tokens).",
}
FLAGS = {  # switches that are not settings: how to run, not what
    "resume": ("--resume", "Continue the run in --out from its checkpoint."),
    "overwrite": ("--overwrite", "Replace existing outputs (only ones finevl wrote)."),
}
Total = Callable[[Any], "int | None"]  # a progress bar's length from the settings (None: unknown)
STEPS: Total = attrgetter("steps")
UNKNOWN: Total = lambda config: None  # noqa: E731


@dataclass(frozen=True)
class Command:
    """One command: its name, its settings class and the function that runs it
    (`module:name`, imported when it runs), its flags, and its progress bar's length."""

    name: str
    config: str
    run: str
    flags: tuple[str, ...] = ()
    total: Total | None = None


TRAIN, CLIP, EVAL, APPS = "finevl.train", "finevl.train.config", "finevl.eval", "finevl.apps"
REPORT, STIC, REGION = "finevl.report", "finevl.train.stic", "finevl.train.region"
COMMANDS = (
    Command("world generate", "finevl.world.config:GenerateConfig", "finevl.world.generate:generate_command",
            ("overwrite",), attrgetter("n")),
    Command("world show", f"{REPORT}.config:GalleryConfig", f"{REPORT}.gallery:gallery_command",
            ("overwrite",)),
    Command("data check", "finevl.data.config:CheckConfig", "finevl.data.check:check_command"),
    Command("data tokenizer", "finevl.data.config:TokenizerConfig", "finevl.data.tokenizer:tokenizer_command",
            ("overwrite",)),
    Command("clip train", f"{CLIP}:ClipTrainConfig", f"{TRAIN}.contrastive:train_clip", ("resume",), STEPS),
    Command("clip tower", f"{CLIP}:TowerTrainConfig", f"{TRAIN}.tower:train_tower", ("resume",), STEPS),
    Command("clip zeroshot", f"{APPS}.config:ZeroshotConfig", f"{APPS}.zeroshot:zeroshot_command",
            ("overwrite",)),
    Command("clip retrieval", f"{APPS}.config:RetrievalConfig", f"{APPS}.retrieval:retrieval_command",
            ("overwrite",)),
    Command("clip caption", f"{APPS}.config:RetrievalCaptionConfig",
            f"{APPS}.retrieval:retrieval_caption_command", ("overwrite",)),
    Command("clip compose", f"{EVAL}.config:ComposeConfig", f"{EVAL}.compose:compose_command", ("overwrite",),
            UNKNOWN),
    Command("caption train", f"{CLIP}:CaptionTrainConfig", f"{TRAIN}.mle:train_captioner", ("resume",),
            STEPS),
    Command("caption scst", f"{CLIP}:ScstConfig", f"{TRAIN}.scst:train_scst", ("resume",), STEPS),
    Command("caption generate", f"{APPS}.config:CaptionGenerateConfig", f"{APPS}.captioning:generate_command",
            ("overwrite",)),
    Command("grammar train", f"{CLIP}:GrammarTrainConfig", f"{TRAIN}.grammar:train_grammar", ("resume",),
            STEPS),
    Command("finecap eval", f"{EVAL}.config:FinecapEvalConfig", f"{EVAL}.caption:finecap_command",
            ("overwrite",)),
    Command("stic base", f"{STIC}.config:BaseConfig", f"{STIC}.base:train_base", ("resume",),
            lambda c: c.lm_steps + c.align_steps + c.sft_steps),
    Command("stic prefs", f"{STIC}.config:PrefsConfig", f"{STIC}.prefs:prefs_command",
            ("overwrite",), lambda c: 2 * c.images),
    Command("stic dpo", f"{STIC}.config:DpoConfig", f"{STIC}.dpo:train_dpo", (), UNKNOWN),
    Command("stic dift", f"{STIC}.config:DiftConfig", f"{STIC}.dift:train_dift", ("resume",), STEPS),
    Command("stic quickstart", f"{STIC}.config:PipelineConfig", f"{EVAL}.vqa:stic_quickstart", (), UNKNOWN),
    Command("vqa eval", f"{EVAL}.config:VqaEvalConfig", f"{EVAL}.vqa:vqa_command", ("overwrite",)),
    Command("region train", f"{REGION}.config:RegionTrainConfig", f"{REGION}.stages:train_region_stage",
            ("resume",), STEPS),
    Command("region eval", f"{REGION}.config:RegionEvalConfig", f"{EVAL}.region:region_eval_command",
            ("overwrite",), UNKNOWN),
    Command("region ask", f"{EVAL}.config:RegionAskConfig", f"{EVAL}.region:ask_command"),
    Command("region quickstart", f"{REGION}.config:RegionPipelineConfig",
            f"{EVAL}.region:region_quickstart", (), UNKNOWN),
    Command("edit", f"{APPS}.config:EditConfig", f"{APPS}.editing:edit_command", ("overwrite",), STEPS),
    Command("score", f"{APPS}.config:ScoreConfig", f"{APPS}.score:score_command", ("overwrite",)),
    Command("index build", f"{APPS}.config:IndexBuildConfig", f"{APPS}.search:build_command", ("overwrite",)),
    Command("index query", f"{APPS}.config:IndexQueryConfig", f"{APPS}.search:query_command"),
    Command("moderate", f"{APPS}.config:ModerateConfig", f"{APPS}.moderation:moderate_command",
            ("overwrite",)),
    Command("report", f"{REPORT}.config:ReportConfig", f"{REPORT}.report:report_command", ("overwrite",)),
)  # fmt: skip


def _attr(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def _progress(label: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), transient=True)


def _typer_command(command: Command) -> Callable[..., None]:
    """The typer function of a command: its settings' fields and its flags as options."""
    config_cls = _attr(command.config)

    def run(config: Any, **flags: bool) -> None:
        work = _attr(command.run)
        if command.total is None:
            result = work(config, **flags)
        else:
            total = command.total(config)
            with _progress(command.name) as bar:
                task = bar.add_task(command.name, total=total)
                result = work(config, **flags, progress=lambda k: bar.advance(task, k))
        if result is not None and os.environ.get("RANK", "0") == "0":  # one process speaks
            typer.echo(json.dumps(result, indent=1))

    switches = [
        inspect.Parameter(flag, inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, FLAGS[flag][0], help=FLAGS[flag][1]))
        for flag in command.flags
    ]  # fmt: skip
    run.__signature__ = inspect.Signature(
        [inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY), *switches]
    )  # type: ignore[attr-defined]
    run.__doc__ = " ".join(inspect.cleandoc(config_cls.__doc__ or "").split("\n\n")[0].split())
    return config_options(config_cls)(run)


def build_app() -> typer.Typer:
    """The `finevl` app: every row of `COMMANDS` under its group."""
    root = typer.Typer(help="finevl: fine-grained vision-language work around CLIP.", no_args_is_help=True)
    groups = {name: typer.Typer(help=text, no_args_is_help=True) for name, text in GROUPS.items()}
    for name, group in groups.items():
        root.add_typer(group, name=name)
    for command in COMMANDS:
        *group, name = command.name.split()
        (groups[group[0]] if group else root).command(name)(_typer_command(command))
    root.callback(invoke_without_command=True)(_version)
    return root


def _version(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        from finevl import __version__

        typer.echo(__version__)
        raise typer.Exit()


app = build_app()


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
    from finevl.temps import remove_live_temps

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
