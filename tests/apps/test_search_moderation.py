"""Search index and moderation: the plumbing on untrained models, and the bad input."""

from __future__ import annotations

import json

import pytest
import torch

from finevl.apps.moderation import (
    DEMO_POLICY,
    Criterion,
    Policy,
    WorldLabels,
    best_threshold,
    calibrate,
    evaluate,
    load_policy,
)
from tests.test_cli import assert_one_line_error, run


def test_index_build_and_query(world, tmp_path, capsys, monkeypatch):
    from PIL import Image

    code, out, err = run(
        [
            "index",
            "build",
            "--model",
            "finevl-tiny-vit",
            str(world / "images"),
            "--out",
            str(tmp_path / "idx"),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert json.loads(out)["count"] == 60
    # The index answers exactly as brute-force cosine search over the same embeddings.
    from finevl.apps.search import build_index, open_index, query_index
    from finevl.models.clip import load_clip

    clip = load_clip("finevl-tiny-vit")
    paths = sorted((world / "images").iterdir())[:20]
    build_index(clip, "finevl-tiny-vit", paths, tmp_path / "idx2")
    index, meta = open_index(tmp_path / "idx2")
    emb = clip.embed_images([Image.open(p).convert("RGB") for p in paths])
    hits = query_index(index, meta, emb[:2].numpy(), k=5)
    for q in range(2):
        want = (emb @ emb[q]).topk(5)
        assert [h["score"] for h in hits[q]] == pytest.approx(want.values.tolist(), abs=1e-5)
        index_of = {str(p): j for j, p in enumerate(paths)}  # each hit's path carries its own score
        assert all(
            h["score"] == pytest.approx((emb[index_of[h["path"]]] @ emb[q]).item(), abs=1e-5) for h in hits[q]
        )
        assert hits[q][0]["path"] == str(paths[q]) or hits[q][0]["score"] == pytest.approx(1.0, abs=1e-5)
    first = paths[0]
    code, out, err = run(
        ["index", "query", str(tmp_path / "idx"), "--image", str(first), "--text", "a red star", "-k", "3"],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert [len(r["hits"]) for r in json.loads(out)["results"]] == [3, 3]
    code, _, err = run(["index", "query", str(tmp_path), "--text", "x"], capsys, monkeypatch)
    assert_one_line_error(code, err, "not an index")


def test_thresholds_and_precision_recall():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.9])
    truth = torch.tensor([False, True, False, True, True])
    assert best_threshold(scores, truth) == pytest.approx(0.4)
    pol = Policy(criteria=[Criterion(name="x", prompts=["a"], contrasts=["b"])])
    fitted = calibrate(pol, {"x": scores}, {"x": truth})
    assert fitted.criteria[0].threshold == pytest.approx(0.4)
    m = evaluate(fitted, {"x": scores}, {"x": truth})["x"]
    assert m["precision"] == 1.0 and m["recall"] == 1.0


def test_demo_policy_labels_come_from_the_world(world):
    policy = load_policy(DEMO_POLICY)
    labels = WorldLabels.load(world, "train")
    stars = labels.truth("shape=star")
    assert stars.any() and not stars.all()
    assert len(labels.truth("text")) == len(labels.image_ids) == 48
    assert {c.name for c in policy.criteria} == {"star", "night", "red", "text"}


def test_moderate_command(world, tmp_path, capsys, monkeypatch):
    code, out, err = run(
        [
            "moderate",
            "--model",
            "finevl-tiny-vit",
            str(world / "images"),
            "--calibrate",
            str(world),
            "--calibrate-split",
            "train",
            "--evaluate",
            str(world),
            "--evaluate-split",
            "val",
            "--save-policy",
            str(tmp_path / "p.yaml"),
            "--csv",
            str(tmp_path / "f.csv"),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    res = json.loads(out)
    assert len(res["images"]) == 60 and set(res["metrics"]) == {"star", "night", "red", "text"}
    assert all(0 <= v["precision"] <= 1 for v in res["metrics"].values())
    assert load_policy(tmp_path / "p.yaml").criteria[0].threshold == res["thresholds"]["star"]
    assert (tmp_path / "f.csv").read_text().startswith("image,star_score")
    (tmp_path / "bad.yaml").write_text("criteria: [{name: x, prompts: []}]")
    code, _, err = run(
        [
            "moderate",
            "--model",
            "finevl-tiny-vit",
            "--policy",
            str(tmp_path / "bad.yaml"),
            str(world / "images"),
        ],
        capsys,
        monkeypatch,
    )
    assert_one_line_error(code, err, "bad.yaml")


def test_two_processes_build_the_index_one_process_builds(world, tmp_path):
    """`accelerate launch` splits the collection; the shares, merged in order, are the index
    of one process: same paths, same vectors, the same skipped image, no temporaries left."""
    import shutil
    import subprocess

    import faiss

    from finevl.models.clip import load_clip
    from finevl.train.launch import finevl_command

    torch.manual_seed(0)
    model = load_clip("finevl-tiny-vit").save(tmp_path / "clip")
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted((world / "images").iterdir())[:13]:
        shutil.copy(p, images / p.name)
    (images / "00000005.png").write_bytes(b"not a png")  # one unreadable image, in the first share
    built = {}
    for name, processes in (("one", 1), ("two", 2)):
        args = ["index", "build", "--model", str(model), str(images), "--on-bad-image", "skip"]
        cmd, env = finevl_command([*args, "--out", str(tmp_path / name)], processes)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count('"count"') == 1  # one result, from the main process
        meta = json.loads((tmp_path / name / "index.json").read_text())
        index = faiss.read_index(str(tmp_path / name / "index.faiss"))
        built[name] = (meta, index.reconstruct_n(0, index.ntotal))
    (m1, v1), (m2, v2) = built["one"], built["two"]
    assert m1["paths"] == m2["paths"] and len(m1["paths"]) == 12
    assert len(m1["skipped"]) == len(m2["skipped"]) == 1
    assert abs(v1 - v2).max() < 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip", "images", "one", "two"]


def test_two_processes_score_as_one_process(world, tmp_path):
    """`finevl score` under accelerate launch: images and texts embedded in shares, scored
    once on the main process, the same items and means as one process."""
    import subprocess

    from finevl.models.clip import load_clip
    from finevl.train.launch import finevl_command

    torch.manual_seed(0)
    model = load_clip("finevl-tiny-vit").save(tmp_path / "clip")
    images = sorted((world / "images").iterdir())[:7]
    rows = [{"image": str(p), "caption": c, "refs": ["a shape", "a red star"] if k % 2 else []}
            for k, p in enumerate(images) for c in ("a red star", f"shape number {k}")]  # fmt: skip
    (tmp_path / "pairs.json").write_text(json.dumps(rows))
    scored = {}
    for name, processes in (("one", 1), ("two", 2)):
        args = [
            "score",
            str(tmp_path / "pairs.json"),
            "--model",
            str(model),
            "--out",
            str(tmp_path / f"{name}.json"),
        ]
        cmd, env = finevl_command(args, processes)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count('"metrics"') == 1
        scored[name] = json.loads((tmp_path / f"{name}.json").read_text())
    one, two = scored["one"], scored["two"]
    assert [(i["image"], i["caption"]) for i in one["items"]] == [
        (i["image"], i["caption"]) for i in two["items"]
    ]
    for a, b in zip(one["items"], two["items"], strict=True):
        assert a.keys() == b.keys() and all(
            abs(a[k] - b[k]) < 1e-5 for k in a if k not in ("image", "caption")
        )
    assert one["metrics"] == pytest.approx(two["metrics"], abs=1e-5)
