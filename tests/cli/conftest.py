"""The fuzz harness's sandbox: valid inputs for the arguments a case leaves alone, and one
file (or folder) per bad-input case, made once per session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from PIL import Image

ROOT = os.geteuid() == 0


def _read_only(folder: Path) -> bool:
    """Make `folder` read-only even for root (an immutable folder); False if impossible."""
    if not ROOT:
        folder.chmod(0o555)
        return True
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    return done.returncode == 0


def _writable(folder: Path) -> None:
    if ROOT:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    else:
        folder.chmod(0o755)


def _unreadable(path: Path) -> None:
    """A file that cannot be read: mode 000, or for root (who reads anything) a Unix socket,
    which open() refuses."""
    if ROOT:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        path.write_text('{"a": 1}\n')
        path.chmod(0)


def make_cases(root: Path) -> dict[str, Path]:
    """One path per bad-input case (the names say which)."""
    c = root / "cases"
    c.mkdir()
    (c / "empty.jsonl").write_bytes(b"")
    (c / "non-utf8.jsonl").write_bytes(b'{"image": "a.png", "text": "caf\xe9 \xff\xfe"}\n')
    (c / "truncated.json").write_text('{"images": [{"id": 1, "file_name": "a.p')
    (c / "wrong-shape.json").write_text('[1, "two", {"image": 3, "caption": null}, [], {"id": {}}]\n')
    with (c / "big-line.jsonl").open("w") as f:  # one 50 MB line
        f.write('{"image": "a.png", "text": "' + "a" * 50_000_000 + '"}\n')
    (c / "a-folder.json").mkdir()
    (c / "a-file").write_text("not a folder\n")
    _unreadable(c / "unreadable.json")
    os.symlink("loop.json", c / "loop.json")
    (c / "zero-bytes.png").write_bytes(b"")
    Image.new("1", (20_000, 20_000)).save(c / "bomb.png")  # 400 M pixels, a few KB on disk
    return {
        "missing": c / "missing.json",
        "empty": c / "empty.jsonl",
        "non_utf8": c / "non-utf8.jsonl",
        "truncated_json": c / "truncated.json",
        "wrong_shape_json": c / "wrong-shape.json",
        "line_50mb": c / "big-line.jsonl",
        "folder_for_file": c / "a-folder.json",
        "file_for_folder": c / "a-file",
        "unreadable": c / "unreadable.json",
        "symlink_loop": c / "loop.json",
        "zero_byte_image": c / "zero-bytes.png",
        "decompression_bomb": c / "bomb.png",
    }


@pytest.fixture(scope="session")
def sandbox(world: Path, tmp_path_factory: pytest.TempPathFactory):
    """A folder holding everything the fuzz cases read: a world, a tiny CLIP, valid small
    inputs, the bad-input cases, a user's file and folder, and a read-only folder."""
    from finevl.models.clip import load_clip

    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(world, root / "world")
    from finevl.apps.search import build_index

    clip = load_clip("finevl-tiny-vit")
    clip.save(root / "clip")
    image = root / "world" / "images" / sorted(os.listdir(root / "world" / "images"))[0]
    build_index(clip, str(root / "clip"), [image], root / "index")
    (root / "pairs.json").write_text(f'[{{"image": "{image}", "caption": "a red star"}}]\n')
    Image.open(image).convert("L").point(lambda v: 255 * (v > 128)).save(root / "mask.png")
    user = root / "user"
    (user / "folder").mkdir(parents=True)
    (user / "folder" / "notes.txt").write_text("the user's notes\n")
    (user / "file.txt").write_text("the user's file\n")
    ro = root / "read-only"
    ro.mkdir()
    ro_ok = _read_only(ro)
    info = {"root": root, "image": image, "cases": make_cases(root), "read_only": ro if ro_ok else None}
    yield info
    _writable(ro)
