"""Fine-grained metrics: the fact oracle scores true and false captions as their facts say,
FineCapEval's accuracy follows its word-overlap definition, and degenerate captions are
caught while the world's own text is not."""

from __future__ import annotations

import random

import pytest

from finevl.language import vocab
from finevl.language.scene import Scene
from finevl.metrics.finecap import (
    DegenerateRate,
    FactScores,
    FinecapAccuracy,
    degenerate,
    fact_scores,
    finecap_accuracy,
    repeated_clause,
    repeated_ngram,
)
from finevl.world.annotate import finecap_phrases
from finevl.world.language import coarse_captions, fine_caption, full_phrase, region_descriptions
from finevl.world.scene import sample_scene

GROUPS = ("background", "object", "relation", "all")


def _scene_with(n_objects: int, text: bool = False) -> Scene:
    for seed in range(1000):
        scene = sample_scene(random.Random(seed), 64)
        if len(scene.objects) == n_objects and (scene.text is not None) == text:
            return scene
    raise AssertionError("no such scene in 1000 seeds")


def _background_word(scene: Scene, other: bool = False) -> str:
    name = next(b for b in vocab.BACKGROUNDS if (b != scene.background) == other)
    return vocab.BACKGROUNDS[name][0]


# ----------------------------------------------------------------------------------------
# FactScores


def test_fine_captions_score_one_on_every_criterion():
    metric = FactScores()
    for seed in range(60):
        scene = sample_scene(random.Random(seed), 64)
        metric.update(fine_caption(scene), scene)
    out = metric.compute()
    for group in GROUPS:
        for kind in ("precision", "recall", "f1"):
            assert out[f"{kind}/{group}"] == 1.0, f"{kind}/{group}"
    assert out["unknown_word_rate"] == 0.0


def test_wrong_background_has_zero_background_precision():
    scene = _scene_with(3)
    caption = f"{full_phrase(scene.objects[0])} on {_background_word(scene, other=True)}."
    out = fact_scores([caption], [scene])
    assert out["precision/background"] == 0.0
    assert out["recall/background"] == 0.0
    assert out["precision/object"] == 1.0  # the object part is right


def test_one_object_of_three_is_precise_but_partial():
    scene = _scene_with(3)
    out = fact_scores([f"a {scene.objects[1].ref}"], [scene])
    assert out["precision/object"] == 1.0
    # object criterion of a 3-object scene: the count, and object/size/pattern per object.
    assert out["recall/object"] == pytest.approx(1 / 10)
    assert out["f1/object"] == pytest.approx(2 * 0.1 / 1.1)
    # nothing stated about relations: zero stated counts as precision 0.0 (documented).
    assert out["precision/relation"] == 0.0 and out["recall/relation"] == 0.0


def test_partial_reference_is_true_but_not_recalled():
    scene = _scene_with(3)
    out = fact_scores([f"a {scene.objects[0].shape}"], [scene])  # "a star": colour left out
    assert out["precision/object"] == 1.0
    assert out["recall/object"] == 0.0


def test_swapped_relation_is_false():
    scene = _scene_with(2)
    a, b = scene.objects
    rel = scene.main_relation(0, 1)
    wrong = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    wrong |= {"in front of": "behind", "behind": "in front of"}
    good = fact_scores([f"The {a.ref} is {rel} the {b.ref}."], [scene])
    bad = fact_scores([f"The {a.ref} is {wrong[rel]} the {b.ref}."], [scene])
    assert good["precision/relation"] == 1.0 and good["recall/relation"] == 1.0
    assert bad["precision/relation"] == 0.0 and bad["recall/relation"] == 0.0


def test_micro_average_ignores_captions_that_state_nothing_of_a_criterion():
    scene3, scene1 = _scene_with(3), _scene_with(1)
    metric = FactScores()
    metric.update(fine_caption(scene3), scene3)  # 2 true relations of 2
    metric.update(f"a {scene3.objects[0].ref}", scene3)  # no relation stated, 2 missed
    metric.update(fine_caption(scene1), scene1)  # one object: no relation to state
    out = metric.compute()
    assert out["precision/relation"] == 1.0
    assert out["recall/relation"] == pytest.approx(2 / 4)
    assert out == fact_scores(
        [fine_caption(scene3), f"a {scene3.objects[0].ref}", fine_caption(scene1)], [scene3, scene3, scene1]
    )


def test_all_includes_text_and_unknown_word_rate_counts_unknown_words():
    scene = _scene_with(1, text=True)
    wrong_text = fine_caption(scene).replace(f'"{scene.text}"', '"ZZZ"')
    out = fact_scores([wrong_text], [scene])
    assert out["precision/object"] == 1.0 and out["precision/background"] == 1.0
    assert out["precision/all"] < 1.0  # only the text fact is wrong, and "all" counts it
    junk = f"a zebra on {_background_word(scene)}"
    assert fact_scores([fine_caption(scene), junk], [scene, scene])["unknown_word_rate"] == 0.5


# ----------------------------------------------------------------------------------------
# FineCapEval accuracy


def test_finecap_accuracy_full_and_none():
    phrases = ["a small red striped star", "the blue box is left of the red star"]
    assert finecap_accuracy("the blue box is left of a small red striped star", phrases) == 1.0
    assert finecap_accuracy("zebra giraffe elephant", phrases) == 0.0
    assert finecap_accuracy("a star", phrases) == pytest.approx((2 / 5 + 1 / 9) / 2)  # a, star; star
    assert finecap_accuracy("anything", []) is None
    assert finecap_accuracy("anything", ["", "..."]) is None  # no words left


def test_finecap_accuracy_stems():
    # Porter: "stripes" and "striped" both stem to "stripe", "dots"/"dotted" to "dot";
    # "stripy" stems to "stripi", which matches neither.
    assert finecap_accuracy("a star with stripes", ["a striped star"]) == 1.0
    assert finecap_accuracy("a box with dots", ["a dotted box"]) == 1.0
    assert finecap_accuracy("a stripy star", ["a striped star"]) == pytest.approx(2 / 3)


def test_finecap_accuracy_substring_mode_reproduces_upstream_quirks():
    assert finecap_accuracy("a colored ball", ["red"]) == 0.0
    assert finecap_accuracy("a colored ball", ["red"], substring=True) == 1.0  # "red" in "colored"
    assert finecap_accuracy("a pony", ["pony"]) == 1.0
    assert finecap_accuracy("a pony", ["pony"], substring=True) == 0.0  # stem "poni" not in "pony"


def test_finecap_accuracy_of_fine_captions_is_100_and_empty_relations_are_skipped():
    metric = FinecapAccuracy()
    for seed in range(30):
        scene = sample_scene(random.Random(seed), 64)
        metric.update(fine_caption(scene), finecap_phrases(scene))
    assert metric.compute() == {"background": 100.0, "object": 100.0, "relation": 100.0}

    scene3, scene1 = _scene_with(3), _scene_with(1)
    metric = FinecapAccuracy()
    metric.update(fine_caption(scene3), finecap_phrases(scene3))
    metric.update("zebra", finecap_phrases(scene1))  # no relation phrase: relation untouched
    out = metric.compute()
    assert out["relation"] == 100.0
    assert out["background"] == 50.0


# ----------------------------------------------------------------------------------------
# Degenerate captions


@pytest.mark.parametrize(
    "caption",
    [
        "a red red star",
        "a red star on snow on snow",
        "a red star. a red star.",
        "a red star and a red star and a red star",
        "a red star on snow, a blue box, a red star on snow",
        "The red star is left of the blue box. the red star is left of the blue box",
    ],
)
def test_degenerate_positives(caption):
    assert degenerate(caption)


@pytest.mark.parametrize(
    "caption",
    [
        "a red star on snow",
        "The red star is left of the blue box. The blue box is above the green circle.",
        "a medium purple dotted heart, a medium purple solid triangle",
        "a green cross, left of the purple circle, left of the yellow circle, left of the yellow square",
        "a red star and a red box",
    ],
)
def test_degenerate_negatives(caption):
    assert not degenerate(caption)


def test_repeated_ngram_and_clause_parts():
    assert repeated_ngram("a red red star", 1) and not repeated_ngram("a red red star", 2)
    assert repeated_ngram("on snow on snow", 2) and not repeated_ngram("on snow on snow", 1)
    assert not repeated_ngram("the blue box. The blue box is", 3)  # the period breaks it
    assert repeated_clause("a star, a box, A star") and not repeated_clause("a star, a box")


def test_the_worlds_own_text_is_never_degenerate():
    for seed in range(300):
        rng = random.Random(seed)
        scene = sample_scene(rng, 64)
        texts = [fine_caption(scene), *coarse_captions(rng, scene)]
        texts += [d for k in range(len(scene.objects)) for d in region_descriptions(scene, k)]
        assert not any(map(degenerate, texts)), texts


def test_degenerate_rate():
    metric = DegenerateRate()
    for caption in [
        "a red red star",  # stutters
        "a red star on snow, a blue box, a red star on snow",  # a clause said twice
        "a zebra on snow",  # unknown word
        "the",  # no fact
        "a red star on snow",  # fine
    ]:
        metric.update(caption)
    assert metric.compute() == {"degenerate_rate": 0.4, "repetition_rate": 0.2, "unparseable_rate": 0.4}
