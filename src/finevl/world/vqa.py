"""VQA pairs in five families, answers short and exact (yes/no balanced)."""

from __future__ import annotations

import random

from finevl.language import vocab
from finevl.language.scene import Scene
from finevl.world.language import plural

FAMILIES = ("attribute", "count", "relation", "background", "text")
_DIRECTION = {"left of": "left", "right of": "right", "above": "above", "below": "below"}


def _yes_no(rng: random.Random, true_q: str, false_q: str) -> tuple[str, str]:
    return (true_q, "yes") if rng.random() < 0.5 else (false_q, "no")


def _attribute(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    obj = rng.choice(scene.objects)
    shapes = [o.shape for o in scene.objects]
    colors = [o.color for o in scene.objects]
    asks = [
        (f"What size is the {obj.ref}?", obj.size),
        (f"What pattern does the {obj.ref} have?", obj.pattern),
    ]
    if shapes.count(obj.shape) == 1:
        asks.append((f"What color is the {obj.shape}?", obj.color))
    if colors.count(obj.color) == 1:
        asks.append((f"What shape is the {obj.color} object?", obj.shape))
    refs = {o.ref for o in scene.objects}
    absent = [f"{c} {s}" for c in vocab.COLORS for s in vocab.SHAPES if f"{c} {s}" not in refs]
    exists = _yes_no(rng, f"Is there a {obj.ref}?", f"Is there a {rng.choice(absent)}?")
    return [rng.choice(asks), exists]


def _count(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    kind = rng.randrange(3)
    if kind == 0:
        return [("How many shapes are there?", str(len(scene.objects)))]
    present = rng.random() < 0.5  # half the time ask about something in the image, so 0 is no default
    if kind == 1:
        color = rng.choice([o.color for o in scene.objects] if present else list(vocab.COLORS))
        return [(f"How many {color} shapes are there?", str(sum(o.color == color for o in scene.objects)))]
    shape = rng.choice([o.shape for o in scene.objects] if present else list(vocab.SHAPES))
    return [(f"How many {plural(shape)} are there?", str(sum(o.shape == shape for o in scene.objects)))]


def _relation(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    if len(scene.objects) < 2:
        return []
    i, j = rng.sample(range(len(scene.objects)), 2)
    a, b = scene.objects[i].ref, scene.objects[j].ref
    true_rels = scene.relations(i, j)
    asked = rng.choice(true_rels)
    # The false twin is of the same kind: another direction, or the inverse occlusion.
    if asked in _DIRECTION:
        wrong = rng.choice([r for r in _DIRECTION if r not in true_rels])
    else:
        wrong = vocab.INVERSE_RELATION[asked]
    return [
        (f"Where is the {a} relative to the {b}?", _DIRECTION[true_rels[0]]),
        _yes_no(rng, f"Is the {a} {asked} the {b}?", f"Is the {a} {wrong} the {b}?"),
    ]


def _background(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    other = rng.choice([b for b in vocab.BACKGROUNDS if b != scene.background])
    name = vocab.BACKGROUNDS
    return [
        ("What is the background?", scene.background),
        _yes_no(
            rng, f"Is the background {name[scene.background][0]}?", f"Is the background {name[other][0]}?"
        ),
    ]


def _text(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    if scene.text:
        return [("Is there any text in the image?", "yes"), ("What is written in the image?", scene.text)]
    # About a fifth of scenes have text: asking a quarter of the others keeps yes/no even.
    return [("Is there any text in the image?", "no")] if rng.random() < 0.25 else []


def vqa_pairs(rng: random.Random, scene: Scene) -> list[tuple[str, str, str]]:
    """(question, answer, family) for a scene: every family, two or so questions each."""
    makers = {
        "attribute": _attribute,
        "count": _count,
        "relation": _relation,
        "background": _background,
        "text": _text,
    }
    return [(q, a, fam) for fam in FAMILIES for q, a in makers[fam](rng, scene)]
