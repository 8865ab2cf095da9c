"""VQA answers are true of the scene, and yes/no questions cannot be answered blind."""

from __future__ import annotations

import random
import re
from collections import Counter

from finevl.world.scene import sample_scene
from finevl.world.vqa import vqa_pairs


def _obj(scene, ref):
    return next(o for o in scene.objects if o.ref == ref)


def test_answers_match_the_scene():
    for seed in range(400):
        rng = random.Random(seed)
        scene = sample_scene(rng, 96)
        for q, a, _ in vqa_pairs(rng, scene):
            if m := re.fullmatch(r"What (size|pattern) (?:is|does) the (\w+ \w+)(?: have)?\?", q):
                assert getattr(_obj(scene, m[2]), m[1]) == a
            elif m := re.fullmatch(r"How many (\w+) shapes are there\?", q):
                assert a == str(sum(o.color == m[1] for o in scene.objects))
            elif q == "How many shapes are there?":
                assert a == str(len(scene.objects))
            elif q == "What is the background?":
                assert a == scene.background
            elif q == "What is written in the image?":
                assert a == scene.text
            elif m := re.fullmatch(r"Is there a (\w+ \w+)\?", q):
                assert (a == "yes") == any(o.ref == m[1] for o in scene.objects)
            elif m := re.fullmatch(r"Where is the (\w+ \w+) relative to the (\w+ \w+)\?", q):
                refs = [o.ref for o in scene.objects]
                rel = scene.relations(refs.index(m[1]), refs.index(m[2]))[0]
                assert rel.startswith(a) or rel == {"left": "left of", "right": "right of"}.get(a)


def test_yes_no_answers_are_balanced_per_question_kind():
    counts: Counter = Counter()
    for seed in range(2000):
        rng = random.Random(seed)
        for q, a, family in vqa_pairs(rng, sample_scene(rng, 96)):
            if a in ("yes", "no"):
                counts[(family, a)] += 1
            if q.startswith("How many") and q != "How many shapes are there?":
                counts[("count", "zero" if a == "0" else "some")] += 1
    for family in ("attribute", "relation", "background", "text"):
        yes, no = counts[(family, "yes")], counts[(family, "no")]
        assert 0.4 < yes / (yes + no) < 0.6, (family, yes, no)
    assert counts[("count", "zero")] / (counts[("count", "zero")] + counts[("count", "some")]) < 0.45
