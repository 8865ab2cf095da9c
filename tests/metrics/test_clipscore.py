"""CLIP-S agrees with torchmetrics' CLIPScore (the external oracle) on the same model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from finevl.apps.score import score_rows
from finevl.metrics.clipscore import ClipScore, clip_s, refclip_s, torchmetrics_clipscore
from finevl.models.clip import load_clip


@pytest.fixture(scope="module")
def hf_clip():
    torch.manual_seed(0)
    clip = load_clip("hf-tiny-vit")
    # An untrained model's cosines sit just below 0 at this seed, where max(cos, 0) would
    # hide everything; flipping the text projection makes them positive, so values compare.
    with torch.no_grad():
        clip.inner.text_projection.weight.neg_()
    return clip


def test_clip_s_matches_torchmetrics_per_pair(hf_clip, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for k in range(6):
        path = tmp_path / f"{k}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        rows += [{"image": str(path), "caption": c} for c in ("a red star on snow", f"{k} blue circles")]
    ours = score_rows(hf_clip, rows, prefix="")["items"]
    compared = 0
    for row, item in zip(rows, ours, strict=True):
        metric = torchmetrics_clipscore(hf_clip)
        image = torch.from_numpy(np.array(Image.open(row["image"]).convert("RGB"))).permute(2, 0, 1)
        metric.update(image, row["caption"])
        theirs = metric.compute().item()
        assert item["CLIP-S"] == pytest.approx(2.5 / 100 * theirs, abs=1e-4)
        compared += theirs > 0
    assert compared >= 8  # the clamp at 0 is not all that was compared


def test_refclip_s_is_the_harmonic_mean():
    s = torch.tensor([1.0, 0.0, 2.0])
    cos = torch.tensor([0.5, 0.9, -0.2])
    # Hessel: the raw best reference cosine, not clamped at 0 (the third pair)
    assert torch.allclose(refclip_s(s, cos), torch.tensor([2 * 1.0 * 0.5 / 1.5, 0.0, 2 * 2.0 * -0.2 / 1.8]))
    assert torch.allclose(refclip_s(s, cos, variant="j"), torch.tensor([2 * 1.25 / 2.25, 0.0, 0.0]))


def test_metric_accumulates_like_the_functional_form():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=-1)
    m = ClipScore()
    m.update(img[:3], txt[:3])
    m.update(img[3:], txt[3:])
    assert m.compute()["CLIP-S"] == pytest.approx(clip_s(img, txt).mean().item())


def test_score_caches_repeated_images_and_references(hf_clip, tmp_path):
    Image.new("RGB", (64, 64), (200, 0, 0)).save(tmp_path / "a.png")
    rows = [
        {"image": str(tmp_path / "a.png"), "caption": c, "refs": ["a red square", "red"]}
        for c in ("x", "y", "z")
    ]
    out = score_rows(hf_clip, rows)
    assert out["unique_images"] == 1 and out["unique_refs"] == 2
    assert set(out["metrics"]) == {"CLIP-S", "RefCLIP-S", "RefCLIP-S-j"}


def test_caption_embedder_prefixes_and_embeds_each_distinct_text_once(hf_clip, monkeypatch):
    from finevl.metrics.clipscore import PREFIX, CaptionEmbedder

    seen: list[list[str]] = []
    original = hf_clip.embed_texts
    monkeypatch.setattr(hf_clip, "embed_texts", lambda texts: seen.append(texts) or original(texts))
    texts = CaptionEmbedder(hf_clip)
    refs = texts.references([["a star", "a red star"], ["a star"], ["snow", "a star", "grass"]])
    assert seen[-1] == [PREFIX + t for t in ("a star", "a red star", "snow", "grass")]
    assert [len(r) for r in refs] == [2, 1, 3]
    alone = original([PREFIX + "a star"])[0]
    for r, k in ((refs[0], 0), (refs[1], 0), (refs[2], 1)):
        assert torch.allclose(r[k], alone, atol=1e-6)
    caps = texts(["a star", "a star", "grass"])
    assert seen[-1] == [PREFIX + "a star", PREFIX + "grass"] and torch.equal(caps[0], caps[1])
    known = CaptionEmbedder(hf_clip, known={"a star": caps[0]})
    both = known(["a star", "a blue circle", "a blue circle"])
    assert seen[-1] == [PREFIX + "a blue circle"] and torch.equal(both[0], caps[0])  # only the new one
