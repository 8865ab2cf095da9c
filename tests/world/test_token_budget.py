"""A fine caption must fit CLIP's 77-token context (at most 70 BPE tokens), checked with
open_clip's real CLIP tokenizer."""

from __future__ import annotations

import random

from finevl.language.scene import Scene, SceneObject
from finevl.world.language import fine_caption
from finevl.world.scene import sample_scene

LIMIT = 70


def _bpe_len(text: str) -> int:
    from open_clip.tokenizer import _tokenizer  # the real CLIP BPE, shipped offline

    return len(_tokenizer.encode(text))


def test_fine_captions_of_random_scenes_fit_clip_context():
    worst = max(_bpe_len(fine_caption(sample_scene(random.Random(s), 96))) for s in range(2000))
    assert worst <= LIMIT


def test_worst_case_scene_fits_clip_context():
    # Longest words everywhere: four outlined hexagons, an occlusion, the longest text.
    objs = [
        SceneObject("hexagon", c, "medium", "outlined", 10.0 + 20 * k, 10.0 + 21 * k, 8.0)
        for k, c in enumerate(["purple", "orange", "yellow", "brown"])
    ]
    four = Scene(96, "night", objs, depth=[0, 1, 2, 3], occludes=frozenset({(0, 1), (2, 3)}))
    three = Scene(96, "night", objs[:3], depth=[0, 1, 2], text="2024", occludes=frozenset({(0, 1), (1, 2)}))
    assert _bpe_len(fine_caption(four)) <= LIMIT
    assert _bpe_len(fine_caption(three)) <= LIMIT
