"""Fuzz harness over every command: the commands and their path-like arguments are read
from the typer app itself, so a new command is covered without editing this file.

For each command and each path-like argument, every bad-input case (conftest.make_cases) is
fed to an input argument, and a user's file, a user's folder and a read-only folder to an
output argument; the other arguments get valid values. Each cell must end with a non-zero
exit, one stderr line beginning `error:` that names the bad path, no traceback, no file
changed, added or removed outside the command's own outputs, and no temporary left."""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

import pytest
import typer

from finevl.cli import app, run_app

OUTPUTS = {"out", "csv_out", "save_policy", "answers"}  # parameter names of outputs
# str-typed settings that hold paths (the typed ones are `Path`)
PATH_SETTINGS = {"data", "out", "model", "clip", "grammar", "prefs", "instructions", "exclude", "images_dir"}
OUTPUT_CASES = ("user_file_as_out", "user_folder_as_out", "read_only_folder")
# Options of which a command needs exactly one: the first gets a valid value unless another
# of the group is the one being fuzzed.
ONE_OF = [("world", "folder"), ("data", "questions"), ("world", "sugarcrepe")]
EXTRA = {"index query": ["--text", "a star"]}  # what a command needs beside its paths


def _commands() -> list[tuple[list[str], Any]]:
    def walk(cmd: Any, prefix: list[str]):
        if hasattr(cmd, "commands"):
            for name, sub in sorted(cmd.commands.items()):
                yield from walk(sub, [*prefix, name])
        else:
            yield prefix, cmd

    return list(walk(typer.main.get_command(app), []))


def _has_path(annotation: Any) -> bool:
    return annotation is Path or any(_has_path(a) for a in typing.get_args(annotation))


def _path_params(cmd: Any) -> list[Any]:
    """The command's path-like parameters: typed `Path`, or settings that name a path."""
    found = []
    for p in cmd.params:
        kind = p.type_descriptor.annotation
        if _has_path(kind) or (p.name in PATH_SETTINGS and kind in (str, str | None)):
            found.append(p)
    return found


def _needed(p: Any) -> bool:
    """A value the command cannot run without: required, or a setting left empty by default."""
    return bool(p.required) or p.default == ""


def _valid(p: Any, sandbox: dict[str, Any], fresh: Path) -> str:
    """A valid value for a parameter the current case leaves alone."""
    root = sandbox["root"]
    if p.name in OUTPUTS:
        return str(fresh / p.name)
    if p.name in ("model", "clip", "weights"):
        return str(root / "clip")
    if p.name in ("image", "candidate"):
        return str(sandbox["image"])
    if p.name == "mask":
        return str(root / "mask.png")
    if p.name == "images":
        return str(root / "world" / "images")
    if p.name in ("pairs", "pred"):
        return str(root / "pairs.json")
    if p.name == "index":
        return str(root / "index")
    return str(root / "world")  # data, world, folder, ann, pool, index, ...


def _argv(cmd_path: list[str], params: list[Any], values: dict[str, str]) -> list[str]:
    argv = list(cmd_path)
    for p in params:
        if p.name not in values:
            continue
        if p.param_type_name == "argument":
            argv.append(values[p.name])
        else:
            argv += [p.opts[0], values[p.name]]
    return argv


def _values(cmd: Any, fuzzed: Any, bad: Path, sandbox: dict[str, Any], fresh: Path) -> dict[str, str]:
    """Valid values for what the command needs, and the bad one for the fuzzed parameter."""
    paths = {q.name: q for q in _path_params(cmd)}
    values = {name: _valid(q, sandbox, fresh) for name, q in paths.items() if _needed(q) or name in OUTPUTS}
    for q in cmd.params:
        if q.required and q.name not in paths:
            values[q.name] = "What is <region1>?"  # a required text (--target, --question)
    for group in ONE_OF:
        if set(group) <= paths.keys() and fuzzed.name not in group:
            values[group[0]] = _valid(paths[group[0]], sandbox, fresh)
    values[fuzzed.name] = str(bad)
    return values


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under `root`: its kind, size, mode, modification time (ns) and, for small
    files, a content hash."""
    import hashlib

    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            digest = ""
            if path.is_file() and not path.is_symlink() and st.st_size < 1 << 20 and os.access(path, os.R_OK):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            snap[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return snap


def _bad_value(case: str, sandbox: dict[str, Any], fresh: Path) -> Path | None:
    root = sandbox["root"]
    if case == "user_file_as_out":
        return root / "user" / "file.txt"
    if case == "user_folder_as_out":
        return root / "user" / "folder"
    if case == "read_only_folder":
        return None if sandbox["read_only"] is None else sandbox["read_only"] / "new-output"
    return sandbox["cases"][case]


def _cells(cmd: Any, sandbox: dict[str, Any]) -> list[tuple[Any, str]]:
    cells = []
    for p in _path_params(cmd):
        cases = OUTPUT_CASES if p.name in OUTPUTS else tuple(sandbox["cases"])
        cells += [(p, case) for case in cases]
    return cells


def _run_cell(cmd_path, cmd, p, case, sandbox, capsys, fresh: Path) -> str | None:
    """Run one cell: None when it ends as it must, "not reached" when the command stopped
    first at the value the sandbox gave another argument (a CLIP where a captioner or LLaVA
    is needed, a world too small for a setting's default), else what went wrong."""
    bad = _bad_value(case, sandbox, fresh)
    if bad is None:
        return None
    values = _values(cmd, p, bad, sandbox, fresh)
    argv = _argv(cmd_path, cmd.params, values) + EXTRA.get(" ".join(cmd_path), [])
    before = _snapshot(sandbox["root"])
    capsys.readouterr()
    try:
        code = run_app(argv)
    except BaseException as e:  # an exception that escaped: the user would see a traceback
        capsys.readouterr()
        return f"{type(e).__name__} escaped: {e}"[:300]
    _, err = capsys.readouterr()
    after = _snapshot(sandbox["root"])
    own = [str(Path(v).relative_to(sandbox["root"])) for k, v in values.items() if k in OUTPUTS]
    own += [str(fresh.relative_to(sandbox["root"]))]
    changed = [
        k
        for k in before.keys() | after.keys()
        if before.get(k) != after.get(k) and not any(k == o or k.startswith(o + "/") for o in own)
    ]
    lines = err.strip().splitlines()
    if code == 0:
        return "exit 0"
    if "Traceback" in err:
        return "traceback on stderr"
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"stderr is not one error line: {err[-300:]!r}"
    if changed:
        return f"changed outside its output: {sorted(changed)[:5]}"
    named = str(bad) in lines[0] or bad.name in lines[0] or (case == "line_50mb" and "a.png" in lines[0])
    if not named:
        if any(v in lines[0] for k, v in values.items() if k != p.name and k not in OUTPUTS):
            return "not reached"  # stopped first at a valid-looking value of another argument
        return f"error does not name {bad.name}: {lines[0][:300]}"
    return None


COMMANDS = _commands()


@pytest.fixture()
def one_clip(monkeypatch):
    """The sandbox's tiny CLIP loaded once, not once per cell (the cells fail before using it)."""
    import finevl.models.clip as clip_module

    load, cache = clip_module.load_clip, {}

    def cached(spec, weights=None, *args, **kwargs):
        if args or kwargs:
            return load(spec, weights, *args, **kwargs)
        key = (str(spec), str(weights))
        if key not in cache:
            cache[key] = load(spec, weights)
        return cache[key]

    monkeypatch.setattr(clip_module, "load_clip", cached)


@pytest.mark.parametrize("cmd_path,cmd", COMMANDS, ids=[" ".join(c) for c, _ in COMMANDS])
def test_every_bad_path_is_one_error_line_and_changes_nothing(cmd_path, cmd, sandbox, capsys, one_clip):
    failures, not_reached = [], 0
    cells = _cells(cmd, sandbox)
    for k, (p, case) in enumerate(cells):
        fresh = sandbox["root"] / "outs" / f"{'-'.join(cmd_path)}-{k}"
        fresh.mkdir(parents=True)
        problem = _run_cell(cmd_path, cmd, p, case, sandbox, capsys, fresh)
        if problem == "not reached":
            not_reached += 1
        elif problem:
            failures.append(f"{p.name} x {case}: {problem}")
    print(f"{' '.join(cmd_path)}: {len(cells)} cells, {not_reached} stopped first at another argument")
    assert not failures, "\n".join(failures)


def test_the_matrix_covers_every_command_and_path_argument(sandbox):
    """Every command is enumerated; each has its cells (a command without a path argument
    has none: `finevl index query` still has `index` and `--image`)."""
    names = {" ".join(c) for c, _ in COMMANDS}
    assert {"score", "clip caption", "index build", "edit", "world generate", "region eval"} <= names
    sizes = {" ".join(c): len(_cells(cmd, sandbox)) for c, cmd in COMMANDS}
    assert all(n > 0 for n in sizes.values()), sizes
