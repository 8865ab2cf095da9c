"""`finevl clip compose`: the metric, the evaluation's direction, the command end to end on
a FineShapes world and on SugarCrepe's file layout, and one clear line for bad input."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from finevl.data.sugarcrepe import SUGARCREPE_CATEGORIES, ComposePair, read_sugarcrepe
from finevl.errors import FinevlError
from finevl.eval.compose import compose_eval
from finevl.metrics.compose import CompositionalAccuracy, compositional_accuracy
from finevl.world.compose import WORLD_CATEGORIES
from tests.test_cli import assert_one_line_error, run


def test_metric_counts_strict_wins_per_category_and_their_macro_mean():
    v = torch.tensor([[1.0, 0.0]] * 4)
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]])
    n = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])  # a tie is a miss
    cats = ["a", "a", "b", "b"]
    assert compositional_accuracy(v, p, n, cats) == {"a": 0.5, "b": 0.5, "mean": 0.5}
    acc = CompositionalAccuracy()
    acc.update(v[:1], p[:1], n[:1], cats[:1])
    acc.update(v[1:], p[1:], n[1:], cats[1:])
    assert acc.compute() == compositional_accuracy(v, p, n, cats) and acc.higher_is_better
    with pytest.raises(ValueError):
        compositional_accuracy(v, p, n, cats[:3])


class _Stub:
    """Images embed to e0 or e1 by file; a text embeds to e0 if it says 'zero', else e1."""

    def embed_images(self, images):
        return torch.stack(
            [torch.tensor([1.0, 0.0]) if im.width == 8 else torch.tensor([0.0, 1.0]) for im in images]
        )

    def embed_texts(self, texts):
        return torch.stack(
            [torch.tensor([1.0, 0.0]) if "zero" in t else torch.tensor([0.0, 1.0]) for t in texts]
        )


def test_the_image_decides_and_the_blind_baseline_cannot(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "zero.png")
    Image.new("RGB", (9, 9)).save(tmp_path / "one.png")
    pairs = [
        ComposePair(str(tmp_path / "zero.png"), "zero", "one", "swap_att"),
        ComposePair(str(tmp_path / "one.png"), "one", "zero", "swap_att"),
    ]
    out = compose_eval(_Stub(), pairs)  # type: ignore[arg-type]
    assert out["metrics"] == {"swap_att": 1.0, "mean": 1.0}
    assert out["text_only"]["swap_att"] == 0.0  # the mean image ties both captions: no win
    assert out["pairs"] == {"swap_att": 2} and out["images"] == 2


def test_world_command_end_to_end(world, tmp_path, capsys, monkeypatch):
    out = tmp_path / "c.json"
    args = ["clip", "compose", "--model", "finevl-tiny-vit", "--world", str(world), "--split", "all"]
    code, _, err = run([*args, "--limit", "30", "--out", str(out)], capsys, monkeypatch)
    assert code == 0, err
    res = json.loads(out.read_text())
    assert res["task"] == "compositionality" and res["model"] == "finevl-tiny-vit"
    assert set(res["metrics"]) == set(res["text_only"]) == {*WORLD_CATEGORIES, "mean"}
    assert all(0.0 <= v <= 1.0 for v in res["metrics"].values())
    assert res["images"] == 30 and sum(res["pairs"].values()) > 100
    assert set(res["dropped"]) == set(WORLD_CATEGORIES)
    from finevl.report.report import write_report

    shown = write_report(tmp_path / "report.html", [out])
    html = (tmp_path / "report.html").read_text()
    assert shown["compose"] == 1 and "Compositionality" in html
    assert f"<td>swap_att</td><td>{res['metrics']['swap_att']:.3f}</td>" in html
    code, _, err = run([*args, "--limit", "30", "--out", str(out)], capsys, monkeypatch)
    assert_one_line_error(code, err, "already exists", "--overwrite")
    code, _, err = run([*args, "--limit", "5", "--out", str(out), "--overwrite"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out.read_text())["images"] == 5


def _sugarcrepe(root, categories=SUGARCREPE_CATEGORIES):
    images, ann = root / "val2017", root / "sugar"
    images.mkdir()
    ann.mkdir()
    for k, color in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (32, 24), color).save(images / f"{k:012d}.png")
    for cat in categories:
        pairs = {
            str(k): {
                "filename": f"{k:012d}.png",
                "caption": f"a {c} square",
                "negative_caption": f"a {c} circle",
            }
            for k, c in enumerate(["red", "green", "blue"])
        }
        (ann / f"{cat}.json").write_text(json.dumps(pairs))
    return ann, images


def _compose_argv(ann, images) -> list[str]:
    return [
        "clip",
        "compose",
        "--model",
        "finevl-tiny-vit",
        "--sugarcrepe",
        str(ann),
        "--images",
        str(images),
    ]


def test_sugarcrepe_layout_end_to_end(tmp_path, capsys, monkeypatch):
    ann, images = _sugarcrepe(tmp_path)
    out = tmp_path / "s.json"
    argv = _compose_argv(ann, images)
    code, _, err = run([*argv, "--out", str(out), "--limit", "2"], capsys, monkeypatch)
    assert code == 0, err
    res = json.loads(out.read_text())
    assert res["pairs"] == {c: 2 for c in SUGARCREPE_CATEGORIES}
    assert set(res["metrics"]) == {*SUGARCREPE_CATEGORIES, "mean"} and res["images"] == 2
    assert res["dataset"].startswith("sugarcrepe:")


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda ann, img: (img / "000000000001.png").unlink(), "000000000001.png: image file not found"),
        (
            lambda ann, img: (ann / "add_att.json").write_text(
                '{"0": {"filename": "x.png", "caption": "a"}}'
            ),
            "negative_caption",
        ),
        (lambda ann, img: (ann / "swap_obj.json").write_text("{}"), "'swap_obj' has no pairs"),
        (lambda ann, img: (ann / "replace_rel.json").write_text("{not json"), "malformed JSON"),
        (lambda ann, img: (ann / "replace_rel.json").write_text("[1, 2]"), "expected a JSON object"),
    ],
)
def test_bad_sugarcrepe_files_are_one_error_line(tmp_path, capsys, monkeypatch, damage, needle):
    ann, images = _sugarcrepe(tmp_path)
    damage(ann, images)
    with pytest.raises(FinevlError, match=needle.replace("(", r"\(")):
        read_sugarcrepe(ann, images)
    argv = _compose_argv(ann, images)
    code, _, err = run([*argv, "--out", str(tmp_path / "o.json")], capsys, monkeypatch)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "o.json").exists()


def test_bad_requests_are_one_error_line(world, tmp_path, capsys, monkeypatch):
    out = ["--out", str(tmp_path / "o.json")]
    base = ["clip", "compose", "--model", "finevl-tiny-vit"]
    code, _, err = run([*base, *out], capsys, monkeypatch)
    assert_one_line_error(code, err, "--world")
    code, _, err = run([*base, "--sugarcrepe", str(tmp_path), *out], capsys, monkeypatch)
    assert_one_line_error(code, err, "needs --images")
    code, _, err = run(
        [*base, "--sugarcrepe", str(tmp_path), "--images", str(tmp_path), *out], capsys, monkeypatch
    )
    assert_one_line_error(code, err, "no SugarCrepe category file")
    code, _, err = run([*base, "--world", str(world), "--split", "nope", *out], capsys, monkeypatch)
    assert_one_line_error(code, err, "no split 'nope'")
    code, _, err = run([*base, "--world", str(tmp_path), *out], capsys, monkeypatch)
    assert_one_line_error(code, err, "finecap.json")
