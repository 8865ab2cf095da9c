"""The CLIP commands end to end on a small world (untrained models: the plumbing, the JSON
shapes and the errors; quality is measured in benchmarks/)."""

from __future__ import annotations

import json

from PIL import Image

from tests.test_cli import assert_one_line_error, run


def test_zeroshot_retrieval_caption_and_score(world, tmp_path, capsys, monkeypatch):
    code, out, err = run(
        [
            "clip",
            "zeroshot",
            "--model",
            "finevl-tiny-vit",
            "--world",
            str(world),
            "--label",
            "background",
            "--split",
            "train",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["task"] == "zeroshot_classification" and set(res["metrics"]) == {
        "acc1",
        "acc5",
        "mean_per_class_recall",
    }
    assert sum(map(sum, res["confusion"])) == 48
    code, out, err = run(
        [
            "clip",
            "retrieval",
            "--model",
            "hf-tiny-vit",
            "--data",
            str(world),
            "--captions",
            "refs",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["image_retrieval_recall@10"] >= 0
    code, out, err = run(
        [
            "clip",
            "caption",
            "--model",
            "finevl-tiny-vit",
            "--data",
            str(world),
            "--pool",
            str(world),
            "--out",
            str(tmp_path / "preds.json"),
        ],
        capsys,
        monkeypatch,
    )
    preds = json.loads((tmp_path / "preds.json").read_text())
    assert code == 0 and len(preds) == 6 and {"image_id", "caption"} == set(preds[0])
    rows = [
        {"image": f"images/{p['image_id']:08d}.png", "caption": p["caption"], "refs": ["a shape"]}
        for p in preds
    ]
    (world / "..").resolve()
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{**r, "image": str(world / r["image"])} for r in rows]))
    code, out, err = run(
        ["score", "--model", "finevl-tiny-vit", str(pairs), "--csv", str(tmp_path / "s.csv")],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert len(json.loads(out)["items"]) == 6 and (tmp_path / "s.csv").read_text().startswith(
        "image,caption,CLIP-S"
    )


def test_clip_commands_bad_input_is_one_line(world, tmp_path, capsys, monkeypatch):
    code, _, err = run(
        ["clip", "zeroshot", "--model", "finevl-tiny-vit", "--world", str(world), "--label", "mood"],
        capsys,
        monkeypatch,
    )
    assert_one_line_error(code, err, "--label")
    code, _, err = run(
        ["clip", "retrieval", "--model", str(tmp_path / "missing"), "--data", str(world)], capsys, monkeypatch
    )
    assert_one_line_error(code, err, "model directory not found")
    pairs = tmp_path / "p.csv"
    pairs.write_text("image,caption\n")
    code, _, err = run(["score", "--model", "finevl-tiny-vit", str(pairs)], capsys, monkeypatch)
    assert_one_line_error(code, err, "no rows")
    pairs.write_text("image,caption\nimg.png,\n")
    code, _, err = run(["score", "--model", "finevl-tiny-vit", str(pairs)], capsys, monkeypatch)
    assert_one_line_error(code, err, "empty")
    (tmp_path / "bad.png").write_bytes(b"junk")
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    pairs.write_text("image,caption\nbad.png,a star\nok.png,a star\n")
    code, _, err = run(["score", "--model", "finevl-tiny-vit", str(pairs)], capsys, monkeypatch)
    assert_one_line_error(code, err, "bad.png", "corrupt")
    code, out, _ = run(
        ["score", "--model", "finevl-tiny-vit", str(pairs), "--on-bad-image", "skip"], capsys, monkeypatch
    )
    assert code == 0 and json.loads(out)["skipped_images"] == 1 and len(json.loads(out)["items"]) == 1
    code, _, err = run(
        ["clip", "train", "--data", str(world), "--out", str(tmp_path / "run"), "--batch-size", "1"],
        capsys,
        monkeypatch,
    )
    assert_one_line_error(code, err, "--batch-size")
