"""Zero-shot and retrieval metrics against brute-force definitions (CLIP_benchmark's)."""

from __future__ import annotations

import pytest
import torch

from finevl.metrics.retrieval import RetrievalRecall, retrieval_recall
from finevl.metrics.zeroshot import ZeroShotAccuracy, zeroshot_metrics


def test_zeroshot_metrics_match_brute_force():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(200, 7, generator=g), torch.randint(0, 7, (200,), generator=g)
    m = zeroshot_metrics(logits, targets)
    ranks = [(logits[i] > logits[i, targets[i]]).sum().item() for i in range(200)]
    assert m["acc1"] == pytest.approx(sum(r == 0 for r in ranks) / 200)
    assert m["acc5"] == pytest.approx(sum(r < 5 for r in ranks) / 200)
    per_class = [
        sum(1 for i in range(200) if targets[i] == c and ranks[i] == 0) / max(1, (targets == c).sum().item())
        for c in range(7)
    ]
    assert m["mean_per_class_recall"] == pytest.approx(sum(per_class) / 7)
    acc = ZeroShotAccuracy()
    acc.update(logits[:50], targets[:50])
    acc.update(logits[50:], targets[50:])
    assert acc.compute() == pytest.approx(m)
    conf = acc.confusion()
    assert conf.sum() == 200 and conf.trace().item() == sum(r == 0 for r in ranks)


def test_retrieval_recall_matches_brute_force_with_several_captions():
    g = torch.Generator().manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=-1)
    owners = torch.arange(30).repeat_interleave(3)
    txt = torch.nn.functional.normalize(img[owners] + 0.9 * torch.randn(90, 8, generator=g), dim=-1)
    m = retrieval_recall(img, txt, owners, ks=(1, 5))
    sims = txt @ img.T
    for k in (1, 5):
        t2i = sum(owners[t].item() in sims[t].topk(k).indices.tolist() for t in range(90)) / 90
        i2t = (
            sum(any(owners[j].item() == i for j in sims[:, i].topk(k).indices.tolist()) for i in range(30))
            / 30
        )
        assert m[f"image_retrieval_recall@{k}"] == pytest.approx(t2i)
        assert m[f"text_retrieval_recall@{k}"] == pytest.approx(i2t)
    acc = RetrievalRecall(ks=(1, 5))
    acc.update(img[:10], txt[:30], owners[:30])
    acc.update(img[10:], txt[30:], owners[30:] - 10)
    assert acc.compute() == pytest.approx(m)
    assert 0 < m["image_retrieval_recall@1"] < m["image_retrieval_recall@5"] <= 1
