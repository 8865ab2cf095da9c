"""The editing benchmark's parts: edit requests drawn from a world's ground truth, the
judging of one edit (an unedited image changes nothing, the world's own re-rendering
changes only the region), and the benchmark script end to end on tiny models."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from finevl.apps.editing import image_tensor
from finevl.data.images import load_image
from finevl.errors import FinevlError
from finevl.eval.edit import KINDS, edit_cases, judge_edit, summarise
from finevl.eval.judge import judge_labels
from finevl.language import vocab
from finevl.models.attribute_judge import AttributeJudge
from finevl.models.clip import load_clip
from finevl.report.report import write_report
from finevl.world.counterfactual import counterfactual_image


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return load_clip("finevl-tiny-vit"), load_clip("finevl-tiny-vit"), AttributeJudge(judge_labels())


def test_cases_change_one_attribute_of_the_phrase_and_know_their_region(world):
    cases = edit_cases(world, "test", 2, seed=0)
    assert [c.kind for c in cases] == [k for k in KINDS for _ in range(2)]
    for case in cases:
        assert case.before != case.after
        if case.kind == "background":
            assert case.target.endswith(f"on {vocab.BACKGROUNDS[case.after][0]}")
            assert not (case.region & case.object_mask).any()
            continue
        differ = [(a, b) for a, b in zip(case.source.split(), case.target.split(), strict=True) if a != b]
        assert differ == [(case.before, case.after)]
        inside = (case.region <= case.object_mask).all()  # colour: painted pixels of the silhouette
        covers = (case.region >= case.object_mask).all()  # pattern: the silhouette; size: room to grow
        assert {"color": inside, "pattern": inside and covers, "size": covers}[case.kind]
        assert (case.region.sum() > case.object_mask.sum()) == (case.kind == "size")
    assert edit_cases(world, "test", 2, seed=0)[0].describe() == cases[0].describe()
    assert [c.describe() for c in edit_cases(world, "test", 2, seed=1)] != [c.describe() for c in cases]
    with pytest.raises(FinevlError, match="test scenes allow a color edit, not 100"):
        edit_cases(world, "test", 100, seed=0)


class ReadsAsTold:
    """A judge stub: what it reads on the input image and on anything else."""

    def __init__(self, on_input: dict[str, str], on_edit: dict[str, str], original: torch.Tensor):
        self.on_input, self.on_edit, self.original = on_input, on_edit, original

    def judge(self, pixels: torch.Tensor, mask: np.ndarray) -> dict[str, str]:
        return self.on_input if torch.equal(pixels, self.original[0]) else self.on_edit


def test_the_scores_of_one_edit(world, models, monkeypatch):
    case = edit_cases(world, "test", 1, seed=1)[0]  # a colour edit
    original = image_tensor(load_image(case.path))
    edited = original.flip(-1)
    before = {"color": case.before, "pattern": "solid", "size": "small", "background": "sea"}
    prefers = iter([False, True, False, False])  # optimised CLIP before/after, second CLIP before/after
    monkeypatch.setattr("finevl.eval.edit.prefers_target", lambda *a: next(prefers))
    judge = ReadsAsTold(before, {**before, "color": case.before, "pattern": "striped"}, original)
    fooled = judge_edit(case, edited, models[0], models[1], judge)
    assert (
        fooled["flipped"]
        and fooled["flipped_unseen"]
        and fooled["adversarial"]
        and fooled["adversarial_clip"]
    )
    assert not fooled["judge"] and not fooled["changed"] and not fooled["others_kept"]
    prefers = iter([True, True, True, True])
    monkeypatch.setattr("finevl.eval.edit.prefers_target", lambda *a: next(prefers))
    judge = ReadsAsTold(before, {**before, "color": case.after}, original)
    real = judge_edit(case, edited, models[0], models[1], judge)
    assert real["judge"] and real["changed"] and real["others_kept"] and real["judge_reads"] == case.after
    assert not (real["adversarial"] or real["flipped"] or real["adversarial_clip"])
    table = summarise([fooled, real])
    assert table["color"]["adversarial"] == table["all"]["judge"] == 0.5 and table["all"]["edits"] == 2


def test_an_unedited_image_changes_nothing_and_the_oracle_only_its_region(world, models):
    case = edit_cases(world, "test", 1, seed=1)[0]  # a colour edit
    same = judge_edit(case, image_tensor(load_image(case.path)), *models)
    assert same["change_inside"] == same["change_outside"] == 0.0
    assert not same["changed"] and same["others_kept"]
    assert same["clip"] == same["clip_before"] and not same["flipped"]
    oracle = counterfactual_image(world, case.image_id, case.obj, case.kind, case.after)
    judged = judge_edit(case, torch.from_numpy(oracle).permute(2, 0, 1)[None] / 255, *models)
    assert judged["change_inside"] > 0.05 and judged["change_outside"] == 0.0
    table = summarise([same, judged])
    assert table["color"]["edits"] == 2 and table["all"]["change_outside"] == 0.0


def test_the_benchmark_writes_its_table_and_figures(world, tmp_path, monkeypatch):
    clips = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        clips.append(str(load_clip("finevl-tiny-vit").save(tmp_path / f"clip{seed}")))
    out = tmp_path / "results" / "editing.json"
    argv = ["editing.py", "--world", str(world), "--clip", clips[0], "--judge-clip", clips[1]]
    argv += ["--work", str(tmp_path / "work"), "--out", str(out), "--seeds", "0", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--per-kind", "1", "--steps", "2"])
    runpy.run_path("benchmarks/editing.py", run_name="__main__")
    result = json.loads(out.read_text())
    assert result["task"] == "editing" and len(result["conditions"]) == 4
    cell = result["conditions"]["augmented, masked"]["color"]["judge"]
    assert len(cell["per_seed"]) == 2 and 0 <= cell["mean"] <= 1
    masked = result["conditions"]["augmented, masked"]["all"]["change_outside"]["mean"]
    assert masked == 0.0  # a masked edit leaves everything outside its region as it was
    figures = [out.parent / ex["figure"] for ex in result["examples"]]
    assert len(figures) == 4 * len(KINDS) and all(f.is_file() for f in figures)
    assert np.array(load_image(figures[0])).shape[1] > 2 * load_image(world / "images" / "00000000.png").width
    html = write_report(tmp_path / "report.html", [out])["report"]
    page = Path(html).read_text()
    assert "augmented, masked · color" in page and page.count("data:image/png") == len(figures)
