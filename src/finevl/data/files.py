"""The output policy of every finevl command, and atomic folder writes.

A command never renames, moves or replaces what it did not write:

- `claim_output` checks an output path before any work: a missing path is fine; an existing
  one is refused unless `overwrite`, and even then only when finevl wrote it (a folder holds
  the `MARKER` file; a file's content hash is in finevl's record of written files). A file
  where a folder is expected, a folder where a file is expected, a symbolic link, and a
  parent folder that cannot be written are refused, each in one line naming the path.
- Writes go to a temporary sibling (`atomic_dir`, `write_text_atomic` in `jsonio`) that is
  removed on success, on error and on Ctrl-C (and at exit, for temporaries a library left).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finevl.errors import FinevlError
from finevl.temps import live as live_temps

logger = logging.getLogger(__name__)

MARKER = ".finevl-output"
"""The small file inside every folder finevl writes: `--overwrite` replaces only these."""

_claimed: set[Path] = set()  # file outputs claimed by this process: their writes are recorded


def state_dir() -> Path:
    """Where finevl records the files it wrote (`FINEVL_STATE_DIR`, else
    `$XDG_STATE_HOME/finevl`, else `~/.local/state/finevl`)."""
    if os.environ.get("FINEVL_STATE_DIR"):
        return Path(os.environ["FINEVL_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "finevl"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_written(path: str | Path) -> None:
    """Note that finevl wrote the file now at `path` (its content hash), so a later
    `--overwrite` may replace it. A record that cannot be written only costs that."""
    try:
        book = state_dir() / "written"
        book.mkdir(parents=True, exist_ok=True)
        (book / _digest(Path(path))).touch()
    except OSError as e:
        logger.warning("could not record %s as finevl's output: %s", path, e)


def written_by_finevl(path: str | Path, legacy: tuple[str, ...] = ()) -> bool:
    """Whether finevl wrote `path`: a folder holding `MARKER` (or one of the `legacy` files
    that finevl wrote before the marker existed), or a file whose content finevl wrote."""
    path = Path(path)
    if path.is_symlink():
        return False
    if path.is_dir():
        return any((path / name).is_file() for name in (MARKER, *legacy))
    try:
        return path.is_file() and (state_dir() / "written" / _digest(path)).is_file()
    except OSError:
        return False


def _writable_parent(path: Path) -> None:
    """The nearest existing ancestor of `path` must be a folder this process can write in."""
    parent = path.absolute().parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise FinevlError(f"{path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FinevlError(f"{path}: cannot write in {parent} (read-only)")


def claim_output(
    path: str | Path | None, overwrite: bool = False, *, folder: bool = False, legacy: tuple[str, ...] = ()
) -> Path | None:
    """Check, before any work, that a command may write its output at `path` (None: no output).

    `folder` says whether the output is a folder. An empty existing folder is used as is.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = Path(d, "mine.txt").write_text("user data")
    ...     try:
    ...         claim_output(Path(d, "mine.txt"), overwrite=True)
    ...     except FinevlError as e:
    ...         print(str(e).split(": ", 1)[1])
    exists and was not written by finevl; choose another output path
    """
    if path is None:
        return None
    path = Path(path)
    _writable_parent(path)
    if os.path.lexists(path):
        if path.is_symlink():
            raise FinevlError(f"{path}: is a symbolic link; choose another output path")
        if folder and not path.is_dir():
            raise FinevlError(f"{path}: exists and is a file, not a folder; choose another output path")
        if not folder and path.is_dir():
            raise FinevlError(f"{path}: is a folder; give a file name for this output")
        empty_folder = folder and not any(path.iterdir())
        if not empty_folder:
            if not written_by_finevl(path, legacy):
                raise FinevlError(f"{path}: exists and was not written by finevl; choose another output path")
            if not overwrite:
                raise FinevlError(f"{path}: already exists; pass --overwrite to replace it")
        if not os.access(path, os.W_OK):
            raise FinevlError(f"{path}: read-only")
    if not folder:
        _claimed.add(path.absolute())
    return path


def make_own_folder(path: str | Path) -> Path:
    """Create `path` (a folder finevl fills in place, such as a training run) with the
    `MARKER`, so that it is recognised as finevl's own."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER
    if not marker.exists():
        from finevl import __version__

        marker.write_text(json.dumps({"written_by": "finevl", "version": __version__}) + "\n")
    return path


def finish_file(path: Path) -> None:
    """Called by the atomic writers once `path` is in place: a claimed output is recorded."""
    if path.absolute() in _claimed:
        record_written(path)


def temp_sibling(out: str | Path, tag: str = "tmp") -> Path:
    """A fresh, empty temporary folder beside `out` (same file system, so renames are atomic),
    holding the `MARKER`. Removed at exit unless `replace_dir` has put it in place."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{tag}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    live_temps.add(tmp)
    return make_own_folder(tmp)


def replace_dir(tmp: Path, out: Path, legacy: tuple[str, ...] = ()) -> None:
    """Put the finished folder `tmp` at `out`. What is at `out` is replaced only when it is a
    folder finevl wrote (or an empty folder); a file, a link or a user's folder is never
    renamed or replaced (`FinevlError`, `tmp` removed). At every moment either the old or the
    new folder is complete at `out` (or beside it during the swap)."""
    out = Path(out)
    if os.path.lexists(out):
        if out.is_symlink() or not out.is_dir():
            _discard(tmp)
            raise FinevlError(f"{out}: exists and is not a folder; finevl will not replace it")
        if any(out.iterdir()) and not written_by_finevl(out, legacy):
            _discard(tmp)
            raise FinevlError(f"{out}: folder not written by finevl; finevl will not replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    live_temps.discard(tmp)


def _discard(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    live_temps.discard(tmp)


@contextmanager
def atomic_dir(out: str | Path, legacy: tuple[str, ...] = ()) -> Iterator[Path]:
    """Build a folder in a temporary sibling, then `replace_dir` it into `out`; the
    temporary is removed on error and on Ctrl-C.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_dir(Path(d, "o")) as tmp:
    ...         _ = (tmp / "a.txt").write_text("x")
    ...     sorted(p.name for p in Path(d).iterdir()), (Path(d, "o") / MARKER).is_file()
    (['o'], True)
    """
    tmp = temp_sibling(out)
    try:
        yield tmp
        replace_dir(tmp, Path(out), legacy)
    except BaseException:
        _discard(tmp)
        raise


def claim_run_folder(path: str | Path) -> Path:
    """A folder a command fills in place and continues when run again (a pipeline): an
    existing one is used only when finevl made it; a new one is created with the `MARKER`."""
    path = Path(path)
    if not (path.is_dir() and not path.is_symlink() and written_by_finevl(path)):
        claim_output(path, folder=True)
    return make_own_folder(path)


def remove_stale_temps(folder: Path, prefix: str) -> None:
    """Remove temporaries (`.PREFIX.tmp-PID`, `.PREFIX.old-PID`) that a killed process left
    inside one of finevl's own folders."""
    for p in folder.glob(f".{prefix}.*-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def save_pretrained_atomic(out_dir: str | Path, *parts: Any) -> Path:
    """`save_pretrained` of each part (a model, its tokenizer or processor) into one folder,
    written atomically."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for part in parts:
            part.save_pretrained(str(tmp))
    return out_dir


def claim_outputs(overwrite: bool, *paths: str | Path | None) -> None:
    """`claim_output` for each file a command will write (None: an output not asked for)."""
    for path in paths:
        claim_output(path, overwrite)
