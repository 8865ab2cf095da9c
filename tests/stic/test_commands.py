"""The STIC commands end to end on the small world (tiny sizes: wiring, not quality), the
VQA evaluation on LLaVA-style questions, and bad input as one clear line."""

from __future__ import annotations

import json

from finevl.data.conversations import Turn, read_conversations, write_conversations
from finevl.train.stic.prompts import DESCRIPTION_PREFIX
from tests.test_cli import assert_one_line_error, run

TINY = ["--lm-steps", "2", "--align-steps", "2", "--sft-steps", "2", "--sft-images", "10"]


def _ok(args, capsys, monkeypatch) -> dict:
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    return json.loads(out)


def test_quickstart_runs_every_stage_and_evaluates_each(world, tiny_clip, tmp_path, capsys, monkeypatch):
    out = tmp_path / "stic"
    sizes = ["--pref-images", "8", "--dift-steps", "2", "--dift-examples", "6", "--eval-images", "3"]
    # an untrained model ends most greedy answers at once: sample hot so preferences differ
    args = ["stic", "quickstart", "--data", str(world), "--clip", tiny_clip, "--out", str(out), *TINY, *sizes]
    args += ["--temperature", "3"]
    res = _ok(args, capsys, monkeypatch)
    assert set(res["models"]) == {"base", "dpo", "dift"}
    for label in ("base", "dpo", "dift"):
        result = json.loads((out / "results" / f"vqa-{label}.json").read_text())
        assert result["task"] == "vqa" and result["metrics"]["questions"] > 0
        assert {"accuracy/count", "accuracy/average", "description"} <= set(result["metrics"])
    infused = read_conversations(out / "stic" / "dift" / "dift.json")
    assert len(infused) == 6 and all(t.question.startswith(DESCRIPTION_PREFIX) for t in infused)
    dpo = json.loads((out / "stic" / "dpo" / "summary.json").read_text())
    assert dpo["steps"] >= 1 and (out / "stic" / "dpo" / "adapter" / "adapter_config.json").is_file()
    report = tmp_path / "report.html"
    results = [str(out / "results" / f"vqa-{label}.json") for label in ("base", "dpo", "dift")]
    assert (
        _ok(["report", "--out", str(report), "--world", str(world), *results], capsys, monkeypatch)["vqa"]
        == 3
    )
    html = report.read_text()
    assert "Vision-language model (STIC)" in html and "STIC dift" in html and "data:image/png" in html
    # resumable: a second call reads every stage back instead of training again
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "results" not in p.parts}
    again = _ok(args, capsys, monkeypatch)
    assert again["models"] == res["models"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing trained or written again


def test_vqa_eval_takes_llava_style_questions(world, tiny_lvlm_dir, tmp_path, capsys, monkeypatch):
    qs = tmp_path / "q.jsonl"
    rows = [{"question_id": k, "image": f"images/{k:08d}.png", "text": "What is the background?",
             "answer": "snow", "category": "background"} for k in range(3)]  # fmt: skip
    qs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = tmp_path / "answers.jsonl"
    args = ["vqa", "eval", "--model", tiny_lvlm_dir, "--questions", str(qs), "--images", str(world)]
    res = _ok(
        [*args, "--answers", str(answers), "--max-new-tokens", "3", "--dtype", "bfloat16"],
        capsys,
        monkeypatch,
    )
    assert res["metrics"]["questions"] == 3 and "accuracy/background" in res["metrics"]
    written = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [a["question_id"] for a in written] == [0, 1, 2] and all("text" in a for a in written)


def test_bad_input_is_one_line(world, tiny_lvlm_dir, tmp_path, capsys, monkeypatch):
    code, _, err = run(["vqa", "eval", "--model", str(tmp_path), "--data", str(world)], capsys, monkeypatch)
    assert_one_line_error(code, err, "incomplete model directory")
    bad = tmp_path / "prefs.jsonl"
    bad.write_text('{"id": 0, "image": "images/00000000.png"}\n')
    args = [
        "stic",
        "dpo",
        "--model",
        tiny_lvlm_dir,
        "--prefs",
        str(bad),
        "--data",
        str(world),
        "--out",
        str(tmp_path / "d"),
        "--no-merge",  # switches, not values
        "--drop-image",
    ]
    code, _, err = run(args, capsys, monkeypatch)
    assert_one_line_error(code, err, "not a preference record")
    ties = tmp_path / "ties.jsonl"
    tie = {"id": 0, "image": "images/00000000.png", "prompt": "<image>\nq", "chosen": "a", "rejected": "a",
           "rejected_kind": "hallucination", "rejected_prompt": "<image>\nq"}  # fmt: skip
    ties.write_text(json.dumps(tie) + "\n")
    code, _, err = run([*args[:5], str(ties), *args[6:]], capsys, monkeypatch)
    assert_one_line_error(code, err, "no usable preference record", "chosen_equals_rejected")
    code, _, err = run(["vqa", "eval", "--model", tiny_lvlm_dir], capsys, monkeypatch)
    assert_one_line_error(code, err, "--data")


def test_llava_conversations_round_trip_and_refuse_bad_turns(tmp_path):
    turns = [Turn(image="images/a.png", question="What is it?", answer="a star", kind="vqa"),
             Turn(question="Say hi.", answer="hi")]  # fmt: skip
    write_conversations(tmp_path / "c.json", turns)
    raw = json.loads((tmp_path / "c.json").read_text())
    assert raw[0]["conversations"][0]["value"] == "<image>\nWhat is it?" and "image" not in raw[1]
    assert read_conversations(tmp_path / "c.json") == turns
    raw[0]["conversations"][0]["from"] = "gpt"
    (tmp_path / "c.json").write_text(json.dumps(raw))
    from finevl.errors import FinevlError

    try:
        read_conversations(tmp_path / "c.json")
    except FinevlError as e:
        assert "alternate" in str(e)
    else:
        raise AssertionError("a conversation that does not alternate was accepted")


def test_base_runs_on_two_processes(world, tiny_clip, tmp_path):
    """`stic base` under accelerate launch: the main process claims the folder and writes the
    shared files once, every stage trains on both processes, one summary."""
    import subprocess

    from finevl.train.launch import finevl_command

    out = tmp_path / "base"
    args = [
        "stic",
        "base",
        "--data",
        str(world),
        "--clip",
        tiny_clip,
        "--out",
        str(out),
        *TINY,
        "--batch-size",
        "4",
    ]
    cmd, env = finevl_command(args, processes=2)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count('"instructions"') == 1  # the main process speaks
    summary = json.loads((out / "summary.json").read_text())
    assert all(summary["stages"][s]["processes"] == 2 for s in ("lm", "align", "sft"))
    assert (out / "sft" / "checkpoint" / "model" / "config.json").is_file()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # no temporaries left
