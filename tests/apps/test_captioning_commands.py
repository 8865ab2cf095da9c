"""The captioning pipeline end to end on a small world: MLE, grammar head, SCST with every
reward, generation, evaluation; resume; bad prediction files. (Quality: benchmarks/.)"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from finevl.models.clip import load_clip
from tests.test_cli import assert_one_line_error, run

TINY = ["--d-model", "32", "--layers", "1", "--heads", "2"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(load_clip("finevl-tiny-vit").save(tmp_path_factory.mktemp("clip") / "clip"))


def _ok(args, capsys, monkeypatch) -> dict:
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    return json.loads(out)


def test_mle_grammar_scst_generate_eval(world, clip_dir, tmp_path, capsys, monkeypatch):
    w, t = str(world), tmp_path
    mle = ["caption", "train", "--data", w, "--out", str(t / "mle"), "--clip", clip_dir, "--steps", "3"]
    assert _ok([*mle, "--batch-size", "4", *TINY], capsys, monkeypatch)["steps"] == 3
    grammar = ["grammar", "train", "--data", w, "--out", str(t / "g"), "--clip", clip_dir, "--steps", "2"]
    res = _ok([*grammar, "--batch-size", "8"], capsys, monkeypatch)
    assert set(res["held_out_accuracy"]) >= {"positives", "repeat", "shuffle", "all_negatives"}
    scst = ["caption", "scst", "--data", w, "--out", str(t / "s"), "--model", str(t / "mle/checkpoint/model")]
    rewards = ["--cider-weight", "1", "--refclip-weight", "1", "--grammar", str(t / "g/checkpoint/model")]
    res = _ok(
        [*scst, "--steps", "2", "--batch-size", "4", "--samples", "3", *rewards, "--grammar-weight", "1"],
        capsys,
        monkeypatch,
    )
    assert {"sample/CLIP-S", "sample/CIDEr-D", "sample/RefCLIP-S", "sample/grammar", "reward_share"} <= set(
        res
    )
    assert (t / "s/tensorboard").is_dir() and (t / "s/log.jsonl").is_file()
    preds = t / "preds.json"
    gen = ["caption", "generate", "--model", str(t / "s/checkpoint/model"), "--data", w, "--out", str(preds)]
    assert _ok([*gen, "--decoding", "beam"], capsys, monkeypatch)["images"] == 6
    rows = json.loads(preds.read_text())
    res = _ok(
        [
            "finecap",
            "eval",
            "--pred",
            str(preds),
            "--ann",
            w,
            "--clip",
            clip_dir,
            "--no-meteor",
            "--out",
            str(t / "e.json"),
        ],
        capsys,
        monkeypatch,
    )
    metrics = res["metrics"]
    assert res["images"] == len(rows) == 6 and "SPICE" in res["notes"][0]
    assert set(metrics["ngram"]) >= {"coarse", "fine", "background", "object"}
    assert {"CLIP-S", "RefCLIP-S", "image_retrieval_recall@1"} <= set(metrics["clip"])
    assert {"precision/object", "recall/all"} <= set(metrics["facts"]) and "degenerate_rate" in metrics
    report = [
        "report",
        "--out",
        str(t / "r.html"),
        "--world",
        w,
        "--caption-run",
        str(t / "mle"),
        "--caption-run",
    ]
    assert _ok([*report, str(t / "s"), str(t / "e.json")], capsys, monkeypatch)["captioning"] == 1
    html = (t / "r.html").read_text()
    assert (
        "Captioning" in html
        and rows[0]["caption"].replace('"', "&#34;") in html
        and html.count("data:image/png") >= 3
    )


def test_mle_resume_after_a_stop_equals_an_uninterrupted_run(world, clip_dir, tmp_path, capsys, monkeypatch):
    base = ["caption", "train", "--data", str(world), "--clip", clip_dir, "--steps", "4", "--batch-size", "4"]
    _ok([*base, "--out", str(tmp_path / "a"), *TINY], capsys, monkeypatch)
    first = _ok([*base, "--out", str(tmp_path / "b"), *TINY, "--max-minutes", "1e-9"], capsys, monkeypatch)
    assert first["steps"] == 1
    _ok([*base, "--out", str(tmp_path / "b"), *TINY, "--resume"], capsys, monkeypatch)
    a = load_file(str(tmp_path / "a/checkpoint/model/model.safetensors"))
    b = load_file(str(tmp_path / "b/checkpoint/model/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _eval_error(world, path, capsys, monkeypatch, *needles):
    code, _, err = run(
        ["finecap", "eval", "--pred", str(path), "--ann", str(world), "--no-meteor"], capsys, monkeypatch
    )
    assert_one_line_error(code, err, *needles)


def test_bad_prediction_files_are_one_clear_error(world, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps([{"image_id": 999999, "caption": "a star"}]))
    _eval_error(world, bad, capsys, monkeypatch, "not in the annotations", "999999")
    bad.write_text(json.dumps([{"image_id": 0, "caption": "a"}, {"image_id": 0, "caption": "b"}]))
    _eval_error(world, bad, capsys, monkeypatch, "appears twice")
    bad.write_bytes(b'[{"image_id": 0, "caption": "\xff\xfe"}]')
    _eval_error(world, bad, capsys, monkeypatch, "not UTF-8")
    bad.write_text("[]")
    _eval_error(world, bad, capsys, monkeypatch, "non-empty list")


def test_empty_captions_are_counted_and_score_zero(world, clip_dir, tmp_path, capsys, monkeypatch):
    preds = tmp_path / "p.json"
    said = {"image_id": 1, "caption": "a star on snow."}
    scores = []
    for rows in ([said], [{"image_id": 0, "caption": ""}, said]):
        preds.write_text(json.dumps(rows))
        args = [
            "finecap",
            "eval",
            "--pred",
            str(preds),
            "--ann",
            str(world),
            "--no-meteor",
            "--clip",
            clip_dir,
        ]
        res = _ok(args, capsys, monkeypatch)
        assert res["empty_captions"] == len(rows) - 1 and res["images"] == len(rows)
        scores.append(res["metrics"]["clip"])
    for name in ("CLIP-S", "RefCLIP-S"):  # the empty caption adds a 0 to the mean
        assert scores[1][name] == pytest.approx(scores[0][name] / 2, abs=1e-6)


def test_finecapeval_csv_is_scored_with_its_images(world, clip_dir, tmp_path, capsys, monkeypatch):
    import csv

    from finevl.data.formats import read_finecap

    records = read_finecap(world / "finecap.json")[:3]
    names = [f"COCO_val2014_{r.image_id + 100:012d}.png" for r in records]
    images = tmp_path / "images"
    images.mkdir()
    with (tmp_path / "finecapeval.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption", "background", "object", "relation"])
        for r, name in zip(records, names, strict=True):
            (images / name).write_bytes((world / "images" / r.file_name).read_bytes())
            writer.writerow(
                [
                    name,
                    r.caption,
                    *("\\;".join(r.phrases.get(c, [])) for c in ("background", "object", "relation")),
                ]
            )
            writer.writerow(
                [name, "Another writer's caption of it.", "", "", ""]
            )  # FineCapEval: rows per image
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([{"image_id": r.image_id + 100, "caption": r.caption} for r in records]))
    args = [
        "finecap",
        "eval",
        "--pred",
        str(preds),
        "--ann",
        str(tmp_path / "finecapeval.csv"),
        "--no-meteor",
    ]
    res = _ok([*args, "--clip", clip_dir, "--images", str(images)], capsys, monkeypatch)
    metrics = res["metrics"]
    assert (
        res["images"] == 3 and "coarse" not in metrics["ngram"] and metrics["ngram"]["fine"]["Bleu_4"] > 0.99
    )
    assert metrics["finecap_accuracy"]["background"] == 100.0 and "CLIP-S" in metrics["clip"]
    code, _, err = run(args + ["--clip", clip_dir], capsys, monkeypatch)
    assert_one_line_error(code, err, "needs --images")


def test_two_processes_caption_as_one_process(world, clip_dir, tmp_path, capsys, monkeypatch):
    """`caption generate` under accelerate launch: each process captions its share, the
    main one writes the file in order; greedy decoding gives the captions of one process."""
    import subprocess

    from finevl.train.launch import finevl_command

    mle = ["caption", "train", "--data", str(world), "--out", str(tmp_path / "mle"), "--clip", clip_dir]
    _ok([*mle, "--steps", "3", "--batch-size", "4", *TINY], capsys, monkeypatch)
    model = str(tmp_path / "mle/checkpoint/model")
    for name, processes in (("one", 1), ("two", 2)):
        args = ["caption", "generate", "--model", model, "--data", str(world), "--split", "train"]
        cmd, env = finevl_command([*args, "--out", str(tmp_path / f"{name}.json")], processes)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count('"predictions"') == 1  # one process speaks
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert len(one) > 20 and two == one
    assert not [p for p in tmp_path.iterdir() if "shares" in p.name]  # no temporaries left
