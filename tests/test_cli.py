"""The `finevl` command as a user meets it: help everywhere, JSON out, and one clear line
with a non-zero exit for every mistake (never a traceback)."""

from __future__ import annotations

import json
import sys

import pytest

from finevl.cli import main
from finevl.data.jsonio import read_json


def run(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["finevl", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["world"],
        ["world", "generate"],
        ["world", "show"],
        ["data", "check"],
        ["data", "tokenizer"],
        ["caption", "train"],
        ["caption", "scst"],
        ["caption", "generate"],
        ["grammar", "train"],
        ["finecap", "eval"],
        ["stic"],
        ["stic", "base"],
        ["stic", "prefs"],
        ["stic", "dpo"],
        ["stic", "dift"],
        ["stic", "quickstart"],
        ["vqa", "eval"],
        ["region"],
        ["region", "train"],
        ["region", "eval"],
        ["region", "ask"],
        ["region", "quickstart"],
        ["edit"],
    ],
)
def test_help_everywhere(cmd, capsys, monkeypatch):
    code, out, _ = run([*cmd, "--help"], capsys, monkeypatch)
    assert code == 0 and "Usage" in out


def test_bad_arguments_get_usage_and_exit_2(capsys, monkeypatch, tmp_path):
    code, _, err = run(["world", "generate", "--out", str(tmp_path / "w"), "--n", "abc"], capsys, monkeypatch)
    assert code == 2 and "--n" in err and "Traceback" not in err
    code, _, err = run(["world", "generate", "--size", "64"], capsys, monkeypatch)
    assert code == 2 and "--out" in err


def test_invalid_values_are_one_line(capsys, monkeypatch, tmp_path):
    code, _, err = run(["world", "generate", "--out", str(tmp_path / "w"), "--n", "0"], capsys, monkeypatch)
    assert_one_line_error(code, err, "--n must be at least 1")
    assert not (tmp_path / "w").exists()
    code, _, err = run(["data", "check", str(tmp_path), "--on-bad-image", "ignore"], capsys, monkeypatch)
    assert_one_line_error(code, err, "on-bad-image")
    stic = ["stic", "prefs", "--model", "m", "--data", "d", "--out", "o", "--corruption-share", "2"]
    assert_one_line_error(*run(stic, capsys, monkeypatch)[::2], "--corruption-share")
    dift = [
        "stic",
        "dift",
        "--data",
        "d",
        "--out",
        "o",
        "--model",
        "m",
        "--instructions",
        "i",
        "--train",
        "all",
    ]
    assert_one_line_error(*run(dift, capsys, monkeypatch)[::2], "--train must be one of")


def test_generate_show_check_tokenizer(capsys, monkeypatch, tmp_path):
    w = tmp_path / "w"
    code, out, _ = run(
        ["world", "generate", "--out", str(w), "--n", "12", "--size", "64", "--workers", "1"],
        capsys,
        monkeypatch,
    )
    assert code == 0 and json.loads(out)["counts"]["images"] == 12
    code, out, _ = run(["world", "show", str(w), "--limit", "5", "--split", "train"], capsys, monkeypatch)
    html = (w / "gallery.html").read_text()
    assert code == 0 and json.loads(out)["images"] == 5 and html.count('class="card"') == 5
    code, out, _ = run(["data", "check", str(w)], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["images"] == 12 and json.loads(out)["skipped_images"] == 0
    code, out, _ = run(["data", "tokenizer", str(w), "--out", str(tmp_path / "tok")], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["vocab_size"] > 50
    code, _, err = run(["world", "generate", "--out", str(w), "--n", "3"], capsys, monkeypatch)
    assert_one_line_error(code, err, "already exists", "--overwrite")
    code, _, err = run(["world", "show", str(w), "--split", "holdout", "--overwrite"], capsys, monkeypatch)
    assert_one_line_error(code, err, "splits.json", "holdout")


def test_corrupt_png_among_good_ones_errors_or_is_skipped(world_copy, capsys, monkeypatch):
    victim = sorted((world_copy / "images").iterdir())[4]
    victim.write_bytes(victim.read_bytes()[:100])
    code, _, err = run(["data", "check", str(world_copy)], capsys, monkeypatch)
    assert_one_line_error(code, err, victim.name, "truncated or corrupt")
    code, out, _ = run(["data", "check", str(world_copy), "--on-bad-image", "skip"], capsys, monkeypatch)
    report = json.loads(out)
    assert code == 0 and report["skipped_images"] == 1 and report["images"] == 59
    assert victim.name in report["skipped"][0]


def test_missing_image_names_file_and_record(world_copy, capsys, monkeypatch):
    victim = sorted((world_copy / "images").iterdir())[2]
    victim.unlink()
    code, _, err = run(["data", "check", str(world_copy)], capsys, monkeypatch)
    assert_one_line_error(code, err, victim.name, "not found", "image ")


def test_malformed_json_and_bad_masks_are_one_line(world_copy, capsys, monkeypatch):
    inst = world_copy / "instances.json"
    good = inst.read_text()
    inst.write_text(good[: len(good) // 2])
    code, _, err = run(["data", "check", str(world_copy)], capsys, monkeypatch)
    assert_one_line_error(code, err, "instances.json", "malformed JSON")
    data = json.loads(good)
    data["annotations"][0]["segmentation"]["size"] = [32, 32]
    inst.write_text(json.dumps(data))
    code, _, err = run(["data", "check", str(world_copy)], capsys, monkeypatch)
    assert_one_line_error(code, err, f"annotation {data['annotations'][0]['id']}", "32x32", "64x64")


def test_empty_and_overlong_captions(world_copy, tmp_path, capsys, monkeypatch):
    code, _, _ = run(
        ["data", "tokenizer", str(world_copy), "--out", str(tmp_path / "tok"), "--max-length", "24"],
        capsys,
        monkeypatch,
    )
    assert code == 0
    caps = world_copy / "captions.json"
    data = read_json(caps)
    data["annotations"][3]["caption"] = "a red star " * 20
    caps.write_text(json.dumps(data))
    code, _, err = run(
        ["data", "check", str(world_copy), "--tokenizer", str(tmp_path / "tok")], capsys, monkeypatch
    )
    assert_one_line_error(code, err, "captions.json", "caption", "over the tokenizer's limit of 24")
    data["annotations"][3]["caption"] = ""
    caps.write_text(json.dumps(data))
    code, _, err = run(["data", "check", str(world_copy)], capsys, monkeypatch)
    assert_one_line_error(code, err, "captions.json", "annotations[3]", "empty caption")


def test_show_refuses_a_folder_that_is_not_a_world(tmp_path, capsys, monkeypatch):
    code, _, err = run(["world", "show", str(tmp_path)], capsys, monkeypatch)
    assert_one_line_error(code, err, "not a generated world")


def test_os_errors_are_one_line(world, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    code, _, err = run(
        ["world", "show", str(world), "--out", str(tmp_path / "file" / "g.html")], capsys, monkeypatch
    )
    assert_one_line_error(code, err, "file")


def test_gallery_refuses_an_image_of_the_wrong_size(world_copy, capsys, monkeypatch):
    from PIL import Image

    victim = sorted((world_copy / "images").iterdir())[0]
    Image.new("RGB", (10, 10)).save(victim)
    code, _, err = run(["world", "show", str(world_copy)], capsys, monkeypatch)
    assert_one_line_error(code, err, victim.name, "10x10")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["caption", "train", "--data", "d", "--out", "o"], "--clip is required"),
        (
            [
                "caption",
                "train",
                "--data",
                "d",
                "--out",
                "o",
                "--clip",
                "c",
                "--d-model",
                "30",
                "--heads",
                "4",
            ],
            "--d-model",
        ),
        (["caption", "scst", "--data", "d", "--out", "o"], "--model"),
        (
            ["caption", "scst", "--data", "d", "--out", "o", "--model", "m", "--baseline", "best"],
            "--baseline",
        ),
        (
            ["caption", "scst", "--data", "d", "--out", "o", "--model", "m", "--clip-s-weight", "0"],
            "nothing to optimise",
        ),
        (
            ["caption", "scst", "--data", "d", "--out", "o", "--model", "m", "--grammar-weight", "1"],
            "--grammar",
        ),
        (["caption", "generate", "--model", "nowhere", "--data", "d", "--out", "o.json"], "not a captioner"),
    ],
)
def test_captioning_settings_are_checked_in_one_line(args, needle, capsys, monkeypatch):
    code, _, err = run(args, capsys, monkeypatch)
    assert_one_line_error(code, err, needle)
