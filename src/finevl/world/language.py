"""Text about a scene: the fine caption, coarse (COCO-like) references, region descriptions.

The fine caption states every fact in canonical words. Coarse references behave like human
ones: each picks a few salient facts (large objects first) and says them in varied words.
Everything written here is read back by `grammar.parse_caption`.
"""

from __future__ import annotations

import random

from finevl.language import vocab
from finevl.language.facts import stated_relations
from finevl.language.scene import Scene, SceneObject

PLURALS = {"cross": "crosses", "box": "boxes"}


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def plural(noun: str) -> str:
    return PLURALS.get(noun, noun + "s")


def number_word(n: int) -> str:
    return vocab.NUMBERS[n] if n < len(vocab.NUMBERS) else str(n)


def full_phrase(obj: SceneObject) -> str:
    """'a small red striped star': every attribute, canonical words."""
    return with_article(f"{obj.size} {obj.color} {obj.pattern} {obj.shape}")


def text_sentence(text: str) -> str:
    return f'It says "{text}".'


def fine_caption(scene: Scene) -> str:
    """All facts: count and background, each object in full, the stated relations, text."""
    objs = [full_phrase(o) for o in scene.objects]
    listing = objs[0] if len(objs) == 1 else ", ".join(objs[:-1]) + " and " + objs[-1]
    n = len(scene.objects)
    noun = "shape" if n == 1 else "shapes"
    parts = [f"{number_word(n).capitalize()} {noun} on {vocab.BACKGROUNDS[scene.background][0]}: {listing}."]
    for i, rel, j in stated_relations(scene):
        parts.append(f"The {scene.objects[i].ref} is {rel} the {scene.objects[j].ref}.")
    if scene.text:
        parts.append(text_sentence(scene.text))
    return " ".join(parts)


def position_phrase(obj: SceneObject, size: int) -> str:
    """Where an object sits in the image, in thirds: 'in the top left', 'in the center'."""
    col = ("left", "center", "right")[min(2, int(3 * obj.cx / size))]
    row = ("top", "middle", "bottom")[min(2, int(3 * obj.cy / size))]
    if row == "middle":
        return "in the center" if col == "center" else f"on the {col}"
    return f"at the {row}" if col == "center" else f"in the {row} {col}"


def region_descriptions(scene: Scene, k: int) -> tuple[str, str]:
    """(short, detailed) description of object k, as Osprey's region data has."""
    obj = scene.objects[k]
    short = with_article(obj.ref)
    clauses = [f"{full_phrase(obj)} {position_phrase(obj, scene.size)}"]
    for j, other in enumerate(scene.objects):
        if j != k:
            clauses.append(f"{scene.main_relation(k, j)} the {other.ref}")
    return short, ", ".join(clauses)


# ----------------------------------------------------------------------------------------
# Coarse references


def _salient(rng: random.Random, scene: Scene, k: int) -> list[SceneObject]:
    """k distinct objects, the larger ones more likely (people name what stands out)."""
    pool = list(scene.objects)
    picked = []
    while pool and len(picked) < k:
        obj = rng.choices(pool, weights=[o.radius**2 for o in pool])[0]
        pool.remove(obj)
        picked.append(obj)
    return picked


def _noun_phrase(rng: random.Random, obj: SceneObject) -> str:
    words = []
    if rng.random() < 0.3:
        words.append(rng.choice(vocab.SIZES[obj.size]))
    if rng.random() < 0.6:
        words.append(rng.choice(vocab.COLORS[obj.color]))
    shape = rng.choice(vocab.SHAPES[obj.shape])
    post = ""
    if rng.random() < 0.25:
        if obj.pattern in ("striped", "dotted") and rng.random() < 0.4:
            post = " with stripes" if obj.pattern == "striped" else " with dots"
        else:
            words.append(rng.choice(vocab.PATTERNS[obj.pattern]))
    return with_article(" ".join([*words, shape])) + post


def _background(rng: random.Random, scene: Scene) -> str:
    return rng.choice(vocab.BACKGROUNDS[scene.background])


def _relation(rng: random.Random, scene: Scene) -> str:
    i, j = rng.sample(range(len(scene.objects)), 2)
    rel = rng.choice(scene.relations(i, j))
    a, b = scene.objects[i], scene.objects[j]
    return f"{_noun_phrase(rng, a)} {rng.choice(vocab.RELATIONS[rel])} {_noun_phrase(rng, b)}"


def _count(scene: Scene, rng: random.Random) -> str:
    n = len(scene.objects)
    noun = rng.choice(["shape", "object", "thing"])
    return f"{number_word(n)} {noun if n == 1 else plural(noun)}"


def _coarse_one(rng: random.Random, scene: Scene) -> str:
    multi = len(scene.objects) >= 2
    (obj,) = _salient(rng, scene, 1)
    np_ = _noun_phrase(rng, obj)
    templates = [
        lambda: f"{np_} on {_background(rng, scene)}",
        lambda: f"a picture of {np_}",
        lambda: f"{_background(rng, scene)} with {np_}",
        lambda: f"{_count(scene, rng)} on {_background(rng, scene)}",
        lambda: f"some shapes on {_background(rng, scene)}",
    ]
    if multi:
        a, b = _salient(rng, scene, 2)
        pair = f"{_noun_phrase(rng, a)} and {_noun_phrase(rng, b)}"
        templates += [
            lambda: f"{pair} on {_background(rng, scene)}",
            lambda: f"a photo of {pair}",
            lambda: _relation(rng, scene),
            lambda: f"there is {_relation(rng, scene)}",
        ]
    if scene.text:
        templates.append(lambda: f'{np_} and the word "{scene.text}"')
    text = rng.choice(templates)()
    return text[0].upper() + text[1:] + ("." if rng.random() < 0.5 else "")


def coarse_captions(rng: random.Random, scene: Scene, k: int = 5) -> list[str]:
    """k distinct coarse references (distinct where the scene allows it)."""
    out: list[str] = []
    for _ in range(20 * k):
        cap = _coarse_one(rng, scene)
        if cap not in out:
            out.append(cap)
        if len(out) == k:
            return out
    while len(out) < k:  # a one-object scene may have fewer distinct phrasings
        out.append(_coarse_one(rng, scene))
    return out
