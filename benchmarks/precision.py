"""bf16 against fp32 on this machine, side by side in one run (issue 31): what `--dtype auto`
and `--precision auto` buy, and what they cost in values.

Sections (`--sections`, all by default; each row is saved to `--out` as it finishes, and a
rerun skips the rows already there):

- `peak`: a 2048^2 matmul's GFLOP/s in fp32 and in bf16 on this process's threads;
- `trainers`: every trainer for `--steps` steps (200) in fp32 and in bf16, in fresh processes,
  alternated; steps/s (the run's own clock, loading excluded), what `--precision auto`
  resolves to for each (bf16 where it measured >= 1.4x here), the mean loss of the last 10
  steps (tiny world and models, as benchmarks/trainer_speed.py, at each command's default
  batch size);
- `inference`: items/s of each inference path at fp32 and at auto, alternated, with the values'
  agreement: CLIP-S (score), zero-shot, index build (image embeddings), caption generate,
  vqa eval, region eval, at the tiny presets (64 px) and at real size (ViT-B/32 at 224 px, in
  open_clip's architecture and in Hugging Face's layout, random weights);
- `mfu`: the ViT-B/32 image-embedding path, FLOPs counted from the architecture
  (torch's FlopCounterMode over one forward), against both measured peaks;
- `clip_s`: CLIP-S at real size (HF ViT-B/32, 256 world images at 224 px x 5 captions)
  against torchmetrics' `CLIPScore` on the same fp32 model, per-pair values at auto vs fp32.

    .venv/bin/python -W ignore benchmarks/precision.py --out benchmarks/results/precision.json

The CLIP recipe over 3 seeds at both precisions is benchmarks/clip_fineshapes.py with
`--precision fp32` and `--precision auto` (docs/performance.md has the commands).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import trainer_speed  # noqa: E402  (the trainers' children and their tiny world)
from peak import matmul_peak  # noqa: E402

from finevl.data.jsonio import read_json, write_json_atomic  # noqa: E402
from finevl.models.device import dtype_name, placement  # noqa: E402

TRAINERS = (*trainer_speed.TRAINERS[:1], "lit", *trainer_speed.TRAINERS[1:], "region-3", "judge", "dpo")
REAL = ("ViT-B-32", "hf-ViT-B-32")  # open_clip's architecture; CLIPModel(CLIPConfig()) saved


def matmul_gflops(dtype: torch.dtype) -> float:
    """A 2048^2 matmul's best-of-3 GFLOP/s in `dtype` (benchmarks/peak.py)."""
    return matmul_peak(dtype=dtype)["gemm_gflops"]


def timed(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` calls (after one warm-up call) and the last result."""
    out = run()
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = run()
        seconds.append(time.perf_counter() - t)
    return statistics.median(seconds), out


class Rows:
    """The results file, one row at a time: a finished row is saved at once and skipped on a
    rerun, so an interrupted benchmark resumes."""

    def __init__(self, out: Path | None):
        self.out = out
        self.result = read_json(out) if out and out.is_file() else {"benchmark": "precision"}

    def done(self, section: str, name: str) -> bool:
        return name in self.result.get(section, {})

    def add(self, section: str, name: str, row: Any) -> None:
        self.result.setdefault(section, {})[name] = row
        print(section, name, json.dumps(row), flush=True)
        if self.out:
            write_json_atomic(self.out, self.result)


# -- trainers -----------------------------------------------------------------------------


def trainer_rows(rows: Rows, root: Path, steps: int, repeats: int, names: list[str]) -> None:
    """Each trainer in fp32 and in bf16, alternated in fresh processes; what `auto` picks."""
    for name in names:
        if rows.done("trainers", name):
            continue
        runs: dict[str, list[dict]] = {"fp32": [], "bf16": []}
        for k in range(repeats):
            for precision in runs:
                out = root / f"{name}-{precision}-{k}"
                shutil.rmtree(out, ignore_errors=True)  # an interrupted run's folder
                # each command's default batch size: what auto's choice is made for
                child = trainer_speed.run_child(
                    Path("."), name, root, out, steps, {}, precision, batch_size=0
                )
                runs[precision].append(child)
        row: dict[str, Any] = {
            p: {
                "steps_per_s": round(statistics.median(r["steps_per_s"] for r in rs), 2),
                "final_loss": round(rs[0]["final_loss"], 4),
                "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rs)),
            }
            for p, rs in runs.items()
        }
        row["speedup"] = round(row["bf16"]["steps_per_s"] / row["fp32"]["steps_per_s"], 3)
        fp32_loss = row["fp32"]["final_loss"]
        row["loss_rel_diff"] = round(abs(row["bf16"]["final_loss"] - fp32_loss) / abs(fp32_loss), 4)
        rows.add("trainers", name, row)
    rows.result["auto_on_this_cpu"] = auto_precisions()


def auto_precisions() -> dict[str, str]:
    """What `--precision auto` resolves to here, per trainer's settings class."""
    from finevl.eval.judge import JudgeTrainConfig
    from finevl.train import config as C
    from finevl.train.config import resolve_precision
    from finevl.train.region.config import RegionTrainConfig
    from finevl.train.stic.config import BaseConfig, DpoConfig, SupervisedConfig

    classes = {
        "clip train (contrastive, LiT)": C.ClipTrainConfig, "clip tower": C.TowerTrainConfig,
        "caption train": C.CaptionTrainConfig, "caption scst": C.ScstConfig,
        "grammar train": C.GrammarTrainConfig, "region train": RegionTrainConfig,
        "stic base": BaseConfig, "stic dift / stages": SupervisedConfig, "stic dpo": DpoConfig,
        "editing judge": JudgeTrainConfig,
    }  # fmt: skip
    return {name: resolve_precision("auto", cls.CPU_AUTO) for name, cls in classes.items()}


# -- inference ----------------------------------------------------------------------------


def _clip_dirs(root: Path) -> dict[str, Path]:
    """Every CLIP measured, saved once so both precisions load the same weights."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from finevl.models.clip import load_clip

    dirs = {name: root / name for name in ("finevl-tiny-vit", "finevl-tiny-conv")}
    dirs["hf-tiny-vit"] = root / "hf-tiny-vit"
    if not dirs["hf-tiny-vit"].is_dir():
        torch.manual_seed(0)
        load_clip("hf-tiny-vit").save(dirs["hf-tiny-vit"])
    dirs["ViT-B-32"] = root / "ViT-B-32"
    if not dirs["ViT-B-32"].is_dir():
        torch.manual_seed(0)
        load_clip("ViT-B-32").save(dirs["ViT-B-32"])
    dirs["hf-ViT-B-32"] = root / "hf-ViT-B-32"
    if not dirs["hf-ViT-B-32"].is_dir():
        torch.manual_seed(0)
        CLIPModel(CLIPConfig()).save_pretrained(dirs["hf-ViT-B-32"])
        # the tiny preset's tokenizer (the real CLIP BPE) and a 224 px processor
        CLIPTokenizer.from_pretrained(str(dirs["hf-tiny-vit"])).save_pretrained(dirs["hf-ViT-B-32"])
        CLIPImageProcessor(size={"shortest_edge": 224}, crop_size=224).save_pretrained(dirs["hf-ViT-B-32"])
    return dirs


def _paths_and_rows(world: Path, images: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The first `images` images of a world and their 5 coarse captions as score rows."""
    captions = read_json(world / "captions.json")
    files = {im["id"]: str(world / "images" / im["file_name"]) for im in captions["images"]}
    ids = sorted(files)[:images]
    by_image: dict[int, list[str]] = {}
    for ann in captions["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["caption"])
    rows = [{"image": files[i], "caption": c} for i in ids for c in by_image[i][:5]]
    return [files[i] for i in ids], rows


def clip_paths(clip: Any, world: Path, images: int, repeats: int) -> dict[str, tuple[float, int, Any]]:
    """{path: (seconds, items, values)} of the CLIP-only inference paths."""
    from finevl.apps.score import score_rows
    from finevl.apps.search import embed_image_files
    from finevl.apps.zeroshot import TEMPLATES, world_labels, zeroshot_classify
    from finevl.data.images import ImageLoader

    paths, rows = _paths_and_rows(world, images)
    zs_paths, zs_labels, zs_names = world_labels(world, "background", split=None)
    zs_paths, zs_labels = zs_paths[:images], zs_labels[:images]
    out = {}
    s, scored = timed(lambda: score_rows(clip, rows), repeats)
    out["score"] = (s, len(rows), [item["CLIP-S"] for item in scored["items"]])
    s, (_, metric, _) = timed(
        lambda: zeroshot_classify(clip, zs_paths, zs_labels, zs_names, TEMPLATES["background"]), repeats
    )
    out["zeroshot"] = (s, len(zs_paths), torch.cat(metric.logits).argmax(1))
    s, emb = timed(lambda: embed_image_files(clip, paths, ImageLoader()), repeats)
    out["index_build"] = (s, len(paths), torch.stack(list(emb.values())))
    return out


def _agreement(path: str, a: Any, b: Any) -> dict[str, float]:
    """How close auto's values are to fp32's on one path."""
    if path == "score":
        return {"max_abs_diff_clip_s": round(max(abs(x - y) for x, y in zip(a, b, strict=True)), 5)}
    if path == "index_build":
        return {"min_cosine": round(torch.nn.functional.cosine_similarity(a, b).min().item(), 5)}
    if path == "zeroshot":
        return {"same_prediction": round((a == b).float().mean().item(), 4)}
    same = [x == y for x, y in zip(a, b, strict=True)]  # captions or answers
    return {"same_output": round(sum(same) / len(same), 4)}


def inference_rows(rows: Rows, root: Path, worlds: dict[str, Path], repeats: int) -> None:
    """Every inference path at fp32 and at auto on the same weights."""
    from finevl.models.clip import load_clip

    dirs = _clip_dirs(root)
    auto_dtype = placement("cpu", "auto")[1]
    for name, folder in dirs.items():
        real = name in REAL
        if rows.done("inference", name):
            continue
        world, images = (worlds["224"], 256) if real else (worlds["64"], 200)
        measured = {p: clip_paths(load_clip(folder, dtype=d), world, images, repeats)
                    for p, d in (("fp32", torch.float32), ("auto", auto_dtype))}  # fmt: skip
        rows.add("inference", name, _paths_row(measured, auto_dtype))
    for name, measure in (("caption_generate", _caption), ("vqa_eval", _vqa), ("region_eval", _region)):
        if not rows.done("inference", name):
            measured = {p: {name: measure(root, worlds["64"], d, repeats)}
                        for p, d in (("fp32", torch.float32), ("auto", auto_dtype))}  # fmt: skip
            rows.add("inference", name, _paths_row(measured, auto_dtype))


def _paths_row(measured: dict[str, dict[str, tuple[float, int, Any]]], auto: torch.dtype) -> dict:
    row: dict[str, Any] = {"auto_dtype": dtype_name(auto)}
    for path in measured["fp32"]:
        (s32, n, v32), (sa, _, va) = measured["fp32"][path], measured["auto"][path]
        row[path] = {
            "items": n,
            "fp32_items_per_s": round(n / s32, 1),
            "auto_items_per_s": round(n / sa, 1),
            "speedup": round(s32 / sa, 2),
            **_agreement(path, v32, va),
        }
    return row


def _caption(root: Path, world: Path, dtype: torch.dtype, repeats: int) -> tuple[float, int, Any]:
    from finevl.apps.captioning import generate_captions
    from finevl.data.imagetext import load_image_text
    from finevl.models.captioner import load_captioner
    from finevl.models.clip import load_clip

    bundle = load_captioner(root / "mle" / "checkpoint" / "model")
    clip = load_clip(bundle.model.config.clip_model, dtype=dtype)
    bundle.model.to(clip.device, clip.dtype)
    images = load_image_text(world, clip.image_size, split=None, limit=200).images
    s, captions = timed(lambda: generate_captions(bundle, clip, images), repeats)
    return s, len(images), captions


def _vqa(root: Path, world: Path, dtype: torch.dtype, repeats: int) -> tuple[float, int, Any]:
    from finevl.eval.vqa import evaluate_vqa, world_questions
    from finevl.models.lvlm import load_lvlm

    lvlm = load_lvlm(root / "lvlm", dtype)
    questions, scenes = world_questions(world, "train", 50)
    s, (_, answers) = timed(lambda: evaluate_vqa(lvlm, questions, world, scenes, 16), repeats)
    return s, len(questions) + len(scenes), [a["text"] for a in answers]  # answers, then descriptions


def _region(root: Path, world: Path, dtype: torch.dtype, repeats: int) -> tuple[float, int, Any]:
    from finevl.data.images import ImageCache
    from finevl.eval.region import region_answers
    from finevl.models.region import load_region_model
    from finevl.train.region.data import world_regions

    net = load_region_model(root / "region-lm" / "checkpoint" / "model", dtype=dtype)
    by_image = world_regions(world, "train")
    regions = [r for i in sorted(by_image)[:30] for r in by_image[i]]
    images = ImageCache(world / "images")
    s, answers = timed(lambda: region_answers(net, regions, images, 16), repeats)
    return s, 3 * len(regions), [a for task in sorted(answers) for a in answers[task]]


# -- MFU ----------------------------------------------------------------------------------


def vit_image_gflop(
    width: int, layers: int, patch: int, image: int, out_dim: int, mlp_ratio: float = 4.0
) -> float:
    """GFLOP of one image through a ViT image tower, counted from its architecture (a
    multiply-add is 2 FLOPs): the patch embedding, per layer the q/k/v and output projections,
    the attention scores and their weighted sum, the MLP; the final projection."""
    tokens, d, mlp = (image // patch) ** 2 + 1, width, int(mlp_ratio * width)
    patches = 2 * (tokens - 1) * 3 * patch * patch * d
    per_layer = 2 * tokens * (4 * d * d + 2 * d * mlp) + 2 * 2 * tokens * tokens * d
    return (patches + layers * per_layer + 2 * d * out_dim) / 1e9


def mfu_rows(rows: Rows, root: Path, repeats: int, batch: int) -> None:
    """The ViT-B/32 image-embedding path's FLOP/s against both matmul peaks, measured just
    before it (this machine's speed drifts by up to 2x between runs, so a peak from another
    moment misleads)."""
    from torch.utils.flop_counter import FlopCounterMode

    from finevl.models.clip import load_clip

    dirs = _clip_dirs(root)
    gflop = vit_image_gflop(width=768, layers=12, patch=32, image=224, out_dim=512)
    for name in REAL:
        if rows.done("mfu", name):
            continue
        row: dict[str, Any] = {"gflop_per_image_architecture": round(gflop, 3)}
        for label, dtype in (("fp32", torch.float32), ("auto", placement("cpu", "auto")[1])):
            clip = load_clip(dirs[name], dtype=dtype)
            pixels = torch.randint(0, 255, (batch, 3, 224, 224), dtype=torch.uint8)
            if label == "fp32":  # the count cross-checked on the towers' plain training forward
                with FlopCounterMode(display=False) as counter:
                    clip.train().encode_image(clip.normalize_pixels(pixels[:1]))
                row["gflop_per_image_flop_counter"] = round(counter.get_total_flops() / 1e9, 3)
                clip.eval()
            peaks = {p: matmul_gflops(d) for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
            s, _ = timed(lambda clip=clip, pixels=pixels: clip.embed_pixels(pixels), repeats)
            gflops = gflop * batch / s
            row[label] = {
                "dtype": dtype_name(clip.dtype),
                "images_per_s": round(batch / s, 1),
                "gflops": round(gflops, 1),
                "peaks_gflops": peaks,
                "mfu_vs_fp32_peak": round(gflops / peaks["fp32"], 3),
                "mfu_vs_bf16_peak": round(gflops / peaks["bf16"], 3),
            }
        rows.add("mfu", name, row)


# -- CLIP-S at real size against torchmetrics ----------------------------------------------


def clip_s_row(rows: Rows, root: Path, worlds: dict[str, Path], repeats: int) -> None:
    """CLIP-S of 256 images x 5 captions: finevl at fp32 and at auto against torchmetrics."""
    from finevl.apps.score import score_rows
    from finevl.models.clip import load_clip

    if rows.done("clip_s", "hf-ViT-B-32"):
        return
    from clip_score import _torchmetrics  # the same torchmetrics loop as the tiny benchmark

    folder = _clip_dirs(root)["hf-ViT-B-32"]
    _, rows_ = _paths_and_rows(worlds["224"], 256)
    fp32 = load_clip(folder, dtype=torch.float32)
    auto = load_clip(folder, dtype=placement("cpu", "auto")[1])
    times: dict[str, list[float]] = {"fp32": [], "auto": [], "torchmetrics": []}
    values = {}
    score_rows(auto, rows_[:50], prefix="")  # warm the kernels once
    for _ in range(repeats):  # alternated, so a slow spell falls on every side
        for label, clip in (("fp32", fp32), ("auto", auto)):
            t = time.perf_counter()
            values[label] = [i["CLIP-S"] for i in score_rows(clip, rows_, prefix="")["items"]]
            times[label].append(time.perf_counter() - t)
        times["torchmetrics"].append(_torchmetrics(fp32, rows_, 256)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {
        "pairs": len(rows_),
        "auto_dtype": dtype_name(auto.dtype),
        "seconds": {k: round(v, 3) for k, v in med.items()},
        "speedup_fp32": round(med["torchmetrics"] / med["fp32"], 2),
        "speedup_auto": round(med["torchmetrics"] / med["auto"], 2),
        "max_per_pair_diff_auto_vs_fp32": round(
            max(abs(a - b) for a, b in zip(values["auto"], values["fp32"], strict=True)), 5
        ),
        "targets": {"speedup_auto": 15.0, "speedup_fp32": 5.0, "max_per_pair_diff": 0.01},
    }
    rows.add("clip_s", "hf-ViT-B-32", row)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--work", type=Path, default=None, help="Keep the tiny models here (default: a temp dir)."
    )
    parser.add_argument("--sections", nargs="*", default=["peak", "trainers", "inference", "mfu", "clip_s"])
    parser.add_argument("--trainers", nargs="*", default=list(TRAINERS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mfu-batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = Rows(args.out)
    rows.result["threads"] = torch.get_num_threads()
    if "peak" in args.sections and not rows.done("peak", "bf16_gflops"):
        rows.add("peak", "fp32_gflops", matmul_gflops(torch.float32))
        rows.add("peak", "bf16_gflops", matmul_gflops(torch.bfloat16))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        if not (root / "prefs.jsonl").is_file():
            trainer_speed.prepare(root)
        worlds = {"64": root / "world", "224": _world224(root)}
        if "trainers" in args.sections:
            trainer_rows(rows, root, args.steps, args.repeats, args.trainers)
        if "inference" in args.sections:
            inference_rows(rows, root, worlds, args.repeats)
        if "mfu" in args.sections:
            mfu_rows(rows, root, args.repeats, args.mfu_batch)
        if "clip_s" in args.sections:
            clip_s_row(rows, root, worlds, args.repeats)


def _world224(root: Path) -> Path:
    from finevl.world.generate import WorldConfig, generate_world

    world = root / "world224"
    if not (world / "world.json").is_file():
        generate_world(WorldConfig(n=256, size=224, seed=5), world, workers=1, overwrite=True)
    return world


if __name__ == "__main__":
    main()
