"""`generate_world`: N images over worker processes, streamed to disk in standard formats.

Workers render and encode images and return their records; the main process writes the
records in image order, so the output is byte-identical whatever the number of workers.
Everything is written into a temporary folder that is renamed into place at the end: an
interrupted run leaves no half world, and an existing world is never overwritten unasked.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from finevl.data.files import claim_output, replace_dir, temp_sibling
from finevl.data.jsonio import StreamedJson, dumps, write_json_atomic
from finevl.data.shards import ShardSet, write_sizes
from finevl.world.annotate import CATEGORIES, build_image
from finevl.world.config import GenerateConfig, WorldConfig

WORLD_VERSION = 1
SPLITS = ("train", "val", "test")
LEGACY = ("world.json",)  # worlds written before the output marker
CHUNK = 128


def split_of(config: WorldConfig) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of every image: a seeded permutation."""
    order = np.random.default_rng(config.seed).permutation(config.n)
    n_val, n_test = round(config.n * config.val_frac), round(config.n * config.test_frac)
    split = np.zeros(config.n, dtype=np.int8)
    split[order[:n_test]] = 2
    split[order[n_test : n_test + n_val]] = 1
    return split


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB array (fast zlib level: as small as level 6 on these images)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _chunk(args: tuple[WorldConfig, int, int, str, bool]) -> list[tuple[dict[str, Any], bytes | None]]:
    config, start, stop, image_dir, keep_png = args
    out = []
    for image_id in range(start, stop):
        pixels, records = build_image(config.seed, image_id, config.size, **config.scene_options())
        png = encode_png(pixels)
        with open(os.path.join(image_dir, records["image"]["file_name"]), "wb") as f:
            f.write(png)
        out.append((records, png if keep_png else None))
    return out


def _results(
    config: WorldConfig, image_dir: Path, workers: int
) -> Iterator[tuple[dict[str, Any], bytes | None]]:
    jobs = [
        (config, s, min(s + CHUNK, config.n), str(image_dir), config.shards > 0)
        for s in range(0, config.n, CHUNK)
    ]
    if workers <= 1:
        for job in jobs:
            yield from _chunk(job)
        return
    with mp.get_context("spawn").Pool(workers, initializer=_ignore_sigint) as pool:
        for chunk in pool.imap(_chunk, jobs):
            yield from chunk


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which cleans up once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Writers:
    """The world's annotation files, streamed."""

    def __init__(self, tmp: Path, config: WorldConfig, split: np.ndarray):
        info = {"description": "FineShapes", "version": WORLD_VERSION, "seed": config.seed}
        self.instances = StreamedJson(
            tmp / "instances.json",
            {"info": info, "licenses": []},
            ["images", "annotations"],
            footer={"categories": CATEGORIES},
        )
        self.captions = StreamedJson(
            tmp / "captions.json", {"info": info, "licenses": []}, ["images", "annotations"]
        )
        self.finecap = StreamedJson(tmp / "finecap.json", {"info": info}, ["annotations"])
        self.regions = StreamedJson(tmp / "regions.json", {"info": info}, ["annotations"])
        self.vqa = (tmp / "vqa.jsonl").open("w", encoding="utf-8")
        self.shards = None
        if config.shards:
            counts = np.bincount(split, minlength=3)
            self.shards = [
                ShardSet(tmp / "shards", name, config.shards, int(c))
                for name, c in zip(SPLITS, counts, strict=True)
            ]

    def add(self, records: dict[str, Any], png: bytes | None, split: int) -> None:
        image = records["image"]
        coco_image = {k: image[k] for k in ("id", "file_name", "width", "height")}
        self.instances.add("images", coco_image)
        self.captions.add("images", coco_image)
        for ann in records["instances"]:
            self.instances.add("annotations", ann)
        for cap in records["captions"]:
            self.captions.add("annotations", cap)
        self.finecap.add("annotations", records["finecap"])
        for reg in records["regions"]:
            self.regions.add("annotations", reg)
        for q in records["vqa"]:
            self.vqa.write(dumps(q) + "\n")
        if self.shards is not None and png is not None:
            self.shards[split].write(
                Path(image["file_name"]).stem, png, records["finecap"]["caption"], records
            )

    def close(self) -> None:
        for w in (self.instances, self.captions, self.finecap, self.regions):
            w.close()
        self.vqa.close()
        if self.shards is not None:
            sizes: dict[str, int] = {}
            for s in self.shards:
                sizes.update(s.close())
            write_sizes(self.shards[0].folder, sizes)


def _prepare(out: Path, overwrite: bool) -> Path:
    claim_output(out, overwrite, folder=True, legacy=LEGACY)
    tmp = temp_sibling(out)
    (tmp / "images").mkdir()
    return tmp


def generate_world(
    config: WorldConfig,
    out: str | Path,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Generate FineShapes into `out`; returns the summary also written to `world.json`.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     generate_world(WorldConfig(n=4, size=64), f"{d}/w", workers=1)["counts"]["images"]
    4
    """
    out = Path(out).resolve()
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    tmp = _prepare(out, overwrite)
    results = _results(config, tmp / "images", workers)
    try:
        split = split_of(config)
        writers = _Writers(tmp, config, split)
        counts = {"images": 0, "instances": 0, "captions": 0, "vqa": 0}
        for records, png in results:
            image_id = records["image"]["id"]
            writers.add(records, png, int(split[image_id]))
            counts["images"] += 1
            counts["instances"] += len(records["instances"])
            counts["captions"] += len(records["captions"])
            counts["vqa"] += len(records["vqa"])
            if progress:
                progress(1)
        writers.close()
        write_json_atomic(
            tmp / "splits.json", {name: np.flatnonzero(split == k).tolist() for k, name in enumerate(SPLITS)}
        )
        summary = {"name": "FineShapes", "version": WORLD_VERSION, "config": asdict(config), "counts": counts}
        write_json_atomic(tmp / "world.json", summary)
        replace_dir(tmp, out, LEGACY)
    except BaseException:
        results.close()  # stop the workers before their folder goes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "path": str(out)}


def generate_command(
    cfg: GenerateConfig, overwrite: bool = False, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """`finevl world generate`: `generate_world` with the command's settings."""
    return generate_world(
        cfg.world(), cfg.out, workers=cfg.workers or None, overwrite=overwrite, progress=progress
    )
