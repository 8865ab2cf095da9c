"""Caption metrics: CiderD equals pycocoevalcap's CIDEr-D (the external oracle) when its
document frequencies come from the evaluated references; simple_tokenize matches the Java
PTBTokenizer; caption_metrics ranks a perfect caption above junk."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from finevl.errors import FinevlError
from finevl.metrics.captioning import METRIC_KEYS, CiderD, caption_metrics, simple_tokenize

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="PTBTokenizer and METEOR need Java")

# fmt: off
VOCAB = [
    "a", "the", "red", "blue", "green", "star", "box", "circle", "on", "snow", "grass", "sea",
    "left", "of", "above", "below", "big", "small", "with", "dots",
]
# fmt: on


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(2, 14)))


@pytest.fixture(scope="module")
def eval_set() -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """30 images x 5 random references, and candidates including the edge cases."""
    rng = random.Random(12)
    gts = {i: [_sentence(rng) for _ in range(5)] for i in range(30)}
    res = {i: [_sentence(rng)] for i in range(30)}
    res[0] = [gts[0][3]]  # an exact copy of a reference
    res[1] = ["zebra giraffe elephant"]  # no overlap at all
    res[2] = ["red red red red red red red"]  # a repeated word
    res[3] = [gts[3][0] + " " + gts[3][1]]  # long: the length penalty bites
    res[4] = ["star"]  # one word: no bigram
    return gts, res


def test_cider_d_equals_pycocoevalcap_per_image(eval_set):
    gts, res = eval_set
    _, expected = Cider().compute_score(gts, res)
    ids = sorted(gts)
    ours = CiderD([gts[i] for i in ids]).score([res[i][0] for i in ids], [gts[i] for i in ids])
    assert ours.shape == (30,)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    assert ours[1] == 0.0 and ours[0] > np.median(ours)  # the cases are not all alike
    assert len(set(np.round(ours, 6))) > 20


def test_cider_d_fixes_document_frequencies_from_training_refs(eval_set):
    gts, res = eval_set
    ids = sorted(gts)
    cands, refs = [res[i][0] for i in ids], [gts[i] for i in ids]
    full = CiderD([gts[i] for i in ids]).score(cands, refs)
    # The same candidates scored in a batch of two: the weights must not change with the batch.
    fixed = CiderD([gts[i] for i in ids])
    np.testing.assert_allclose(fixed.score(cands[:2], refs[:2]), full[:2], atol=1e-12)
    # Other training data, other idf: a different reward.
    other = CiderD([["zebra giraffe"]] * 3 + [gts[i] for i in ids[:5]])
    assert not np.allclose(other.score(cands, refs), full)


def test_cider_d_tokenizes_its_inputs():
    cider = CiderD([["A red star, on snow."], ["a blue box"], ["a green circle"]])
    raw = cider.score(["A Red star on SNOW!"], [["a red star, on snow."]])
    clean = cider.score(["a red star on snow"], [["a red star on snow"]])
    assert raw[0] == pytest.approx(clean[0]) and clean[0] > 0


def test_cider_d_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="2 candidates but 1"):
        CiderD([["a star"]]).score(["a", "b"], [["a star"]])


def test_simple_tokenize_lowercases_and_drops_ptb_punctuation():
    assert (
        simple_tokenize('A Red star, left of "GO"... (really)!') == "a red star left of go -lrb- really -rrb-"
    )
    assert simple_tokenize("It's a dog's x-ray; isn't it?") == "it 's a dog 's x-ray is n't it"
    assert simple_tokenize("  spaced \t out -- ok ") == "spaced out ok"


@needs_java
def test_simple_tokenize_matches_java_ptbtokenizer():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    sentences = [
        'Two shapes on snow: a small red striped star and a big box. It says "GO".',
        "A polka-dot ball, to the left of a mid-sized crimson box!",
        "It's the dog's bone -- isn't it? (yes) {maybe} ...",
        "We'll see 3.5 cats & 50% of the U.S. flag; they're 'here'",
    ]
    ptb = PTBTokenizer().tokenize({i: [{"caption": s}] for i, s in enumerate(sentences)})
    assert [simple_tokenize(s) for s in sentences] == [ptb[i][0] for i in range(len(sentences))]


def test_caption_metrics_rejects_unknown_ids():
    with pytest.raises(FinevlError, match=r"no references.*\[7\]"):
        caption_metrics({1: "a star", 7: "a box"}, {1: ["a star"]}, meteor=False)
    with pytest.raises(FinevlError, match="no predictions"):
        caption_metrics({}, {1: ["a star"]}, meteor=False)


@needs_java
def test_caption_metrics_rank_a_perfect_caption_above_junk():
    refs = {
        1: ["a small red star on the snow"] * 5,
        2: ["a large blue box left of a green circle"] * 5,
        3: ["two shapes on the grass"] * 5,
    }
    perfect = caption_metrics({k: v[0] for k, v in refs.items()}, refs)
    junk = caption_metrics({1: "zebra", 2: "a a a a", 3: "purple sky at night"}, refs)
    assert tuple(perfect) == METRIC_KEYS == tuple(junk)
    assert perfect["Bleu_1"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["Bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["ROUGE_L"] == pytest.approx(1.0)
    assert perfect["METEOR"] > 0.9
    for key in METRIC_KEYS:
        assert perfect[key] > junk[key], key


@needs_java
def test_caption_metrics_without_meteor_and_on_a_subset():
    refs = {1: ["a red star", "a red star on snow"], 2: ["a blue box"], 3: ["never predicted"]}
    out = caption_metrics({1: "a red star", 2: "a blue box"}, refs, meteor=False)
    assert out["METEOR"] is None
    assert all(isinstance(out[k], float) for k in METRIC_KEYS if k != "METEOR")
