"""The output policy (docs/cli.md) on the defects that were found: a user's file is never
renamed or replaced, --overwrite replaces only finevl's own outputs, no temporary is left
beside an output, non-UTF-8 JSONL is one line naming the file and line, and Ctrl-C during a
long write leaves neither a partial output nor a temporary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from finevl.cli import run_app
from finevl.data.files import MARKER, atomic_dir, claim_output, replace_dir, temp_sibling
from finevl.errors import FinevlError


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_app([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_index_build_never_renames_a_users_file(sandbox, tmp_path, capsys):
    mine = tmp_path / "F"
    mine.write_text("my own notes\n")
    args = ["index", "build", "--model", sandbox["root"] / "clip", sandbox["image"], "--out", mine]
    for extra in ([], ["--overwrite"]):
        code, _, err = _run([*args, *extra], capsys)
        _one_error(code, err, str(mine), "not a folder")
        assert mine.read_text() == "my own notes\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["F"]  # no .F.old-PID, no temporary


def test_replace_dir_refuses_a_file_and_a_users_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("y")
    for target in ("f", "d"):
        tmp = temp_sibling(tmp_path / target)
        with pytest.raises(FinevlError, match="will not replace"):
            replace_dir(tmp, tmp_path / target)
        assert not tmp.exists()
    assert (tmp_path / "f").read_text() == "x" and (tmp_path / "d" / "a").read_text() == "y"


def test_json_out_on_a_folder_leaves_no_temporary(sandbox, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    code, _, err = _run(
        ["score", "--model", sandbox["root"] / "clip", sandbox["root"] / "pairs.json", "--out", folder],
        capsys,
    )
    _one_error(code, err, str(folder), "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"] and not any(folder.iterdir())


def test_overwrite_replaces_finevl_outputs_only(sandbox, tmp_path, capsys):
    out = tmp_path / "scores.json"
    args = ["score", "--model", sandbox["root"] / "clip", sandbox["root"] / "pairs.json", "--out", out]
    assert _run(args, capsys)[0] == 0
    first = out.read_text()
    _one_error(*_run(args, capsys)[::2], "already exists", "--overwrite")
    assert _run([*args, "--overwrite"], capsys)[0] == 0 and out.read_text() == first
    out.write_text(first.replace("clip_score", "edited by hand"))  # now the user's
    _one_error(*_run([*args, "--overwrite"], capsys)[::2], "not written by finevl")
    assert "edited by hand" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]


def test_overwrite_of_a_folder_needs_the_marker(tmp_path):
    with atomic_dir(tmp_path / "o") as tmp:
        (tmp / "a").write_text("1")
    assert (tmp_path / "o" / MARKER).is_file()
    with pytest.raises(FinevlError, match="--overwrite"):
        claim_output(tmp_path / "o", folder=True)
    assert claim_output(tmp_path / "o", True, folder=True) == tmp_path / "o"
    (tmp_path / "o" / MARKER).unlink()
    with pytest.raises(FinevlError, match="not written by finevl"):
        claim_output(tmp_path / "o", True, folder=True)


@pytest.mark.parametrize("command", ["score", "clip caption"])
def test_non_utf8_jsonl_is_one_line_with_the_line_number(command, sandbox, tmp_path, capsys):
    bad = tmp_path / "pairs.jsonl"
    bad.write_bytes(b'{"image": "a.png", "caption": "ok"}\n{"image": "b.png", "caption": "caf\xe9"}\n')
    clip = sandbox["root"] / "clip"
    if command == "score":
        args = ["score", "--model", clip, bad]
    else:
        args = ["clip", "caption", "--model", clip, "--data", bad, "--pool", sandbox["root"] / "world"]
        args += ["--out", tmp_path / "preds.json"]
    code, _, err = _run(args, capsys)
    _one_error(code, err, str(bad), "line 2", "not UTF-8")
    assert "Traceback" not in err


def test_ctrl_c_during_a_long_write_leaves_nothing(tmp_path):
    out = tmp_path / "w"
    cmd = [sys.executable, "-m", "finevl.cli", "world", "generate", "--out", str(out), "--n", "3000"]
    # Ctrl-C's default action in the child even where this test was started with SIGINT
    # ignored (a background job of a shell without job control): Python then installs its own
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    args = [*cmd, "--size", "64", "--workers", "1"]
    child = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, preexec_fn=restore)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".w.tmp-*/images/*.png")) and time.time() < deadline:
        time.sleep(0.1)  # wait until it is writing
    assert child.poll() is None, "finished before it could be interrupted"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert os.listdir(tmp_path) == []  # no partial world, no temporary


def test_a_killed_runs_resume_refuses_a_users_folder(sandbox, tmp_path, capsys):
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("keep\n")
    args = ["clip", "train", "--data", sandbox["root"] / "world", "--out", users, "--steps", "1"]
    for extra in ([], ["--resume"]):
        _one_error(*_run([*args, *extra], capsys)[::2], str(users), "not empty")
        assert sorted(os.listdir(users)) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["mine"]
