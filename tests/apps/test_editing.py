"""Text-guided editing with CLIP: the objective falls, the mask and the views are honoured,
candidates rank by the same objective, and bad input is one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from finevl.apps.editing import EditSettings, edit_image, rank_candidates
from finevl.models.clip import load_clip
from tests.test_cli import assert_one_line_error, run


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(load_clip("finevl-tiny-vit").save(tmp_path_factory.mktemp("clip") / "clip"))


def _mask(world) -> np.ndarray:
    from finevl.data.coco import CocoInstances

    inst = CocoInstances(world / "instances.json")
    return inst.mask(inst.annotations[0][0])


def test_an_edit_lowers_the_directional_loss_and_changes_the_mask_most(world, clip_dir):
    clip = load_clip(clip_dir)
    image = Image.open(world / "images" / "00000000.png").convert("RGB")
    mask = _mask(world)
    edited, summary = edit_image(clip, image, "a blue star", "a red star", mask, EditSettings(steps=30))
    assert summary["text_after"] < summary["text_before"] == 1.0
    assert summary["change_inside"] > 0 and summary["change_outside"] < 1e-3  # confined to the mask
    ranked = rank_candidates(clip, image, [image, edited], "a blue star", "a red star", keep=0.0)
    assert [r["index"] for r in ranked] == [1, 0] and ranked[1]["text"] == pytest.approx(1.0)


def test_a_colour_map_edit_only_recolours(world, clip_dir):
    clip = load_clip(clip_dir)
    image = Image.open(world / "images" / "00000000.png").convert("RGB")
    mask = _mask(world)
    settings = EditSettings(steps=20, param="color", lr=0.2)
    edited, summary = edit_image(clip, image, "a blue star", "a red star", mask, settings)
    assert summary["text_after"] < 1.0 and summary["change_inside"] > 0.01
    before, after = np.array(image)[mask].astype(int), np.array(edited)[mask].astype(int)
    # one colour in, one colour out: pixels alike before are alike after (up to rounding)
    for colour in np.unique(before, axis=0)[:5]:
        same = (before == colour).all(1)
        assert np.ptp(after[same], axis=0).max() <= 1


def test_the_command_writes_the_edit_its_steps_and_a_ranking(world, clip_dir, tmp_path, capsys, monkeypatch):
    image = str(world / "images" / "00000001.png")
    out = tmp_path / "edit"
    args = [
        "edit",
        "--model",
        clip_dir,
        "--image",
        image,
        "--target",
        "a blue star on snow",
        "--out",
        str(out),
    ]
    code, stdout, err = run(
        [*args, "--steps", "4", "--save-every", "2", "--dtype", "bfloat16"], capsys, monkeypatch
    )
    assert code == 0, err
    res = json.loads(stdout)
    assert res["task"] == "edit" and res["steps"] == 4
    assert sorted(p.name for p in (out / "steps").iterdir()) == ["step_00002.png", "step_00004.png"]
    assert (out / "edited.png").is_file() and Image.open(out / "before_after.png").width > 2 * 64
    report = tmp_path / "report.html"
    code, stdout, err = run(["report", "--out", str(report), str(out / "edit.json")], capsys, monkeypatch)
    assert code == 0 and json.loads(stdout)["editing"] == 1, err
    html = report.read_text()
    assert "Text-guided editing" in html and html.count("data:image/png") == 1
    rank = ["edit", "--model", clip_dir, "--image", image, "--target", "a blue star"]
    code, stdout, err = run(
        [*rank, "--candidate", str(out / "edited.png"), "--candidate", image], capsys, monkeypatch
    )
    assert code == 0, err
    assert {r["index"] for r in json.loads(stdout)["ranking"]} == {0, 1}


def test_bad_input_is_one_clear_line(world, clip_dir, tmp_path, capsys, monkeypatch):
    image = str(world / "images" / "00000000.png")
    small = tmp_path / "small.png"
    Image.new("L", (10, 10), 255).save(small)
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    base = ["edit", "--model", clip_dir, "--out", str(tmp_path / "o")]
    cases = [
        (["--image", image, "--target", "  "], "--target is empty"),
        (["--image", image, "--target", "star " * 100], "longer than the CLIP's 77-token context"),
        (
            ["--image", image, "--target", "a star", "--mask", str(small)],
            "the mask is 10x10, the image 64x64",
        ),
        (["--image", str(broken), "--target", "a star"], "broken.png"),
        (["--image", image, "--target", "a star", "--steps", "0"], "--steps must be at least 1"),
        (
            ["--image", image, "--target", "a star", "--param", "warp"],
            "--param must be one of residual, color",
        ),
        (["--image", image, "--target", "a star", "--save-every", "-1"], "--save-every must be >= 0"),
        (["--image", image, "--target", "a star", "--keep-outside", "-1"], "preservation weights"),
        (
            ["--image", image, "--target", "a star", "--mask", image, "--candidate", image],
            "--mask does not apply",
        ),
        (["--image", str(tiny), "--target", "a star"], f"{tiny}: the image is 4x4; finevl edit needs"),
    ]
    for args, message in cases:
        code, _, err = run([*base, *args], capsys, monkeypatch)
        assert_one_line_error(code, err, message)
