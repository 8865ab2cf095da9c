"""Osprey's region metrics: S-IoU, SS with the real MiniLM, open-vocabulary segmentation
(checked against pycocotools' IoU)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from finevl.data.coco import encode_masks
from finevl.language import vocab
from finevl.metrics.region import (
    OpenVocabSegmentation,
    ReferringClassification,
    answer_classes,
    semantic_iou,
)


def test_semantic_iou_is_word_set_iou():
    assert semantic_iou("Red Star", "star") == 0.5
    assert semantic_iou("a star", "star") == 0.5
    assert semantic_iou("circle", "star") == 0.0


def test_semantic_similarity_ranks_the_right_class_first():
    metric = ReferringClassification()
    metric.update(
        ["star", "a small star", "circle"],
        ["star", "star", "star"],
        [("separate",), ("overlapping",), ("overlapping",)],
    )
    out = metric.compute()
    assert out["semantic_similarity/separate"] == pytest.approx(1.0, abs=1e-5)
    assert out["semantic_iou/separate"] == 1.0 and out["regions/overlapping"] == 2
    sims = ReferringClassification()
    sims.update(["a small star", "circle"], ["star", "star"])
    per = sims.compute()
    assert 0.2 < per["semantic_similarity"] < 1.0


def test_answers_map_to_classes_through_synonyms():
    names = list(vocab.SHAPES)
    answers = ["ball", "a star shape", "square"]
    got = [names[k] for k in answer_classes(answers, [vocab.SHAPES[n] for n in names])]
    assert got == ["circle", "star", "square"]


def test_segmentation_miou_matches_pycocotools_iou():
    a = np.zeros((20, 20), bool)
    a[:10] = True
    b = np.zeros((20, 20), bool)
    b[12:, :5] = True
    c = np.zeros((20, 20), bool)
    c[12:, 10:] = True
    seg = OpenVocabSegmentation(3)
    seg.update([a, b, c], [0, 1, 1], [0, 0, 1])  # b is wrongly labelled class 0
    out = seg.compute()
    # class 0: predicted pixels a|b against true pixels a; class 1: predicted c against b|c
    rle = encode_masks([a | b, a, c, b | c])
    coded = [{"size": r["size"], "counts": r["counts"].encode()} for r in rle]
    iou0 = mask_utils.iou([coded[0]], [coded[1]], [0])[0, 0]
    iou1 = mask_utils.iou([coded[2]], [coded[3]], [0])[0, 0]
    assert out["mIoU"] == pytest.approx((iou0 + iou1) / 2)
    # PQ: class 0 has 1 TP, 1 FP; class 1 has 1 TP, 1 FN -> each 1 / 1.5
    assert out["PQ"] == pytest.approx(1 / 1.5) and out["segment_accuracy"] == pytest.approx(2 / 3)
