"""The region commands end to end on the small world (tiny sizes: wiring, not quality):
every stage, an Osprey-format file as data, evaluation, asking about masks, the quickstart
with its report, and bad input as one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from finevl.data.jsonio import read_json
from finevl.data.regions import read_osprey
from tests.test_cli import assert_one_line_error, run

TINY = ["--steps", "2", "--batch-size", "4", "--images", "6", "--warmup-steps", "1"]


def _ok(args, capsys, monkeypatch) -> dict:
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def staged(world, convnext_clip, tmp_path_factory):
    """lm -> 1 -> 2 -> 3 on the small world; {stage: model folder}."""
    from finevl.train.region.config import RegionTrainConfig
    from finevl.train.region.stages import train_region_stage

    root = tmp_path_factory.mktemp("stages")
    models, model = {}, ""
    for stage in ("lm", "1", "2", "3"):
        cfg = RegionTrainConfig(
            data=str(world), out=str(root / stage), stage=stage, clip=convnext_clip, model=model,
            steps=2, batch_size=4, images=6, warmup_steps=1,
        )  # fmt: skip
        train_region_stage(cfg)
        model = models[stage] = str(root / stage / "checkpoint" / "model")
    return models


def test_each_stage_trains_only_its_part(staged):
    from safetensors.torch import load_file

    def own(stage: str) -> dict:
        return load_file(f"{staged[stage]}/region.safetensors")

    def lm(stage: str) -> dict:
        return load_file(f"{staged[stage]}/lm/model.safetensors")

    def same(a: dict, b: dict, prefix: str) -> bool:
        return all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a if k.startswith(prefix))

    assert same(own("lm"), own("1"), "extractor") and not same(own("lm"), own("1"), "projector")
    assert same(lm("lm"), lm("1"), "") and same(lm("1"), lm("2"), "")
    assert same(own("1"), own("2"), "projector") and not same(own("1"), own("2"), "extractor")
    assert not same(lm("2"), lm("3"), "") and not same(own("2"), own("3"), "extractor")
    data = read_osprey(staged["3"].replace("checkpoint/model", "data.json"))
    assert {t.kind for t in data} == {"class", "short", "detailed", "attribute", "relation"}


def test_eval_writes_results_and_answers_and_the_report_draws_them(
    staged, world, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "region.json"
    args = ["region", "eval", "--model", staged["3"], "--data", str(world), "--out", str(out), "--limit", "3"]
    res = _ok([*args, "--max-new-tokens", "4", "--label", "tiny"], capsys, monkeypatch)
    metrics = res["metrics"]
    assert 0 <= metrics["classification"]["semantic_similarity"] <= 1 and "PQ" in metrics["segmentation"]
    assert {"METEOR", "CIDEr"} <= set(metrics["captioning"]) and "recall/all" in metrics["description"]
    answers = [json.loads(line) for line in (tmp_path / "region-answers.jsonl").read_text().splitlines()]
    assert len(answers) == metrics["classification"]["regions"] and "answer_detailed" in answers[0]
    report = tmp_path / "report.html"
    assert (
        _ok(["report", "--out", str(report), "--world", str(world), str(out)], capsys, monkeypatch)["regions"]
        == 1
    )
    html = report.read_text()
    assert (
        "Region understanding (Osprey)" in html and "data:image/png" in html and answers[0]["short"] in html
    )


def test_a_stage_trains_on_an_osprey_file(staged, world, tmp_path, capsys, monkeypatch):
    data = staged["3"].replace("checkpoint/model", "data.json")
    args = ["region", "train", "--stage", "3", "--data", data, "--images-dir", f"{world}/images"]
    res = _ok([*args, "--model", staged["2"], "--out", str(tmp_path / "s3"), *TINY], capsys, monkeypatch)
    assert res["steps"] == 2 and res["turns"] == len(read_osprey(data))
    code, _, err = run(
        [*args[:6], "--model", staged["2"], "--out", str(tmp_path / "x"), *TINY], capsys, monkeypatch
    )
    assert_one_line_error(code, err, "needs --images-dir")


def _mask_file(path, mask: np.ndarray) -> str:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return str(path)


def test_ask_answers_about_masks_and_refuses_bad_ones(staged, world, tmp_path, capsys, monkeypatch):
    image = f"{world}/images/00000000.png"
    rec = read_json(f"{world}/instances.json")["annotations"][0]
    from finevl.data.coco import decode_segmentation

    good = _mask_file(tmp_path / "m.png", decode_segmentation(rec["segmentation"], 64, 64, "m"))
    base = ["region", "ask", "--model", staged["3"], "--image", image, "--max-new-tokens", "3"]
    res = _ok([*base, "--mask", good, "--question", "What is in <region1>?"], capsys, monkeypatch)
    assert isinstance(res["answer"], str)
    half = [*base, "--mask", good, "--question", "What is in <region1>?", "--dtype", "bfloat16"]
    assert isinstance(_ok(half, capsys, monkeypatch)["answer"], str)  # the model in bf16, end to end
    empty = _mask_file(tmp_path / "e.png", np.zeros((64, 64), bool))
    full = _mask_file(tmp_path / "f.png", np.ones((64, 64), bool))
    small = _mask_file(tmp_path / "s.png", np.ones((32, 32), bool))
    cases = [
        ([empty], "What is <region1>?", "mask 1 is empty"),
        ([full], "What is <region1>?", "covers the whole image"),
        ([small], "What is <region1>?", "mask 1 is 32x32, the image 64x64"),
        ([good], "Compare <region1> and <region2>.", "names region 2 but 1 masks"),
        ([good, good], "What is <region1>?", "names 1 of the 2 masks"),
        ([good], "  ", "--question is empty"),
    ]
    for masks, question, message in cases:
        args = [*base, *[x for m in masks for x in ("--mask", m)], "--question", question]
        code, _, err = run(args, capsys, monkeypatch)
        assert_one_line_error(code, err, message)


def test_quickstart_trains_evaluates_and_resumes(world, convnext_clip, tmp_path, capsys, monkeypatch):
    out = tmp_path / "q"
    steps = ["--lm-steps", "2", "--stage1-steps", "1", "--stage2-steps", "1", "--stage3-steps", "2"]
    args = ["region", "quickstart", "--data", str(world), "--clip", convnext_clip, "--out", str(out), *steps]
    args += ["--images", "6", "--eval-images", "2", "--batch-size", "4"]
    res = _ok(args, capsys, monkeypatch)
    assert res["model"].endswith("lm-1-2mask-3mask/checkpoint/model")
    assert read_json(out / "results" / "region.json")["task"] == "region"
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "results" not in p.parts}
    assert _ok(args, capsys, monkeypatch)["model"] == res["model"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing trained again
    other = [a if a != "2" or args[k - 1] != "--stage3-steps" else "3" for k, a in enumerate(args)]
    code, _, err = run(other, capsys, monkeypatch)
    assert_one_line_error(code, err, "ran with other settings")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "4", "--model", "m"], "--stage must be one of"),
        (["--stage", "2"], "--stage 2 needs --model"),
        (["--stage", "lm"], "--clip (a convolutional CLIP) is required"),
        (["--stage", "2", "--model", "m", "--region-input", "polygon"], "--region-input must be mask or box"),
    ],
)
def test_bad_train_settings_are_one_line(args, message, tmp_path, capsys, monkeypatch):
    code, _, err = run(
        ["region", "train", "--data", "w", "--out", str(tmp_path / "o"), *args], capsys, monkeypatch
    )
    assert_one_line_error(code, err, message)
