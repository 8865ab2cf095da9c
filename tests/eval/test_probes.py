"""Consumer probes: each consumer's input pooled per object, and linear probes that find
what is there (an oracle feature) and nothing where nothing is (noise)."""

from __future__ import annotations

import numpy as np
import torch

from finevl.data.imagetext import load_image_text
from finevl.data.owners import owner_maps
from finevl.eval.probes import ProbeSet, probe_consumers, probe_set
from finevl.models.clip import load_clip


def test_each_consumer_gets_one_row_per_object_and_pairs_per_image(world):
    torch.manual_seed(0)
    clip = load_clip("finevl-tiny-conv").eval()
    data = load_image_text(world, clip.image_size)
    owners = owner_maps(world, clip.image_size)
    scenes = [r.scene for r in data.fine][:10]
    probes = probe_set(clip, data.images[:10], owners[:10], scenes)
    objects = sum(len(s["objects"]) for s in scenes)
    assert set(probes.features) == {"captioner", "llava", "region"}
    assert probes.features["llava"].shape == (objects, 256)  # the 1/16 map's channels
    assert probes.features["region"].shape == (objects, 32 + 64 + 128 + 256)
    assert len(probes.pairs) == sum(len(s["objects"]) * (len(s["objects"]) - 1) for s in scenes)
    assert all(p[2] in ("left of", "right of", "above", "below") for p in probes.pairs)


def _synthetic(n: int, rng: np.random.Generator, informative: bool) -> ProbeSet:
    shapes = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8))
    if informative:
        x[np.arange(n), shapes] += 4.0  # the shape is written in the features
    labels = {a: [str(v) for v in shapes] for a in ("shape", "color", "size", "pattern")}
    pairs = [
        (i, i + 1, ["left of", "right of"][i % 2], ["in front of", "behind"][i % 2]) for i in range(n - 1)
    ]
    return ProbeSet({"oracle": x}, labels, pairs)


def test_a_probe_reads_what_is_there_and_not_what_is_not():
    rng = np.random.default_rng(0)
    fit, test = _synthetic(300, rng, True), _synthetic(300, rng, True)
    assert probe_consumers(fit, test)["oracle"]["shape"] > 0.95
    noise_fit, noise_test = _synthetic(300, rng, False), _synthetic(300, rng, False)
    scores = probe_consumers(noise_fit, noise_test)
    assert scores["oracle"]["shape"] < 0.5  # three balanced classes: chance 1/3
    assert scores["majority"]["relation_spatial"] == round(150 / 299, 4)  # 150 of 299 pairs "left of"
