"""FineShapes' compositional benchmark: SugarCrepe's categories made from a scene's facts.

Per image and category, one pair: a positive caption true of the image and a negative
that differs by one change, both written with the world's own phrase renderer
(`language.full_phrase`). Categories (SugarCrepe's seven, plus `count`):

- replace_obj: an object's shape replaced;  replace_att: its colour, pattern or size;
- replace_rel: the relation between two objects replaced by one that does not hold;
- swap_obj / swap_att: two objects' shapes / one attribute swapped (the same words);
- add_obj: an object that is not there added; add_att: a false attribute added to an
  object mentioned without it;  count: a wrong number of objects.

Every positive is read back by the world's parser and all its facts hold; every negative
states a fact that does not hold; a pair failing either check is dropped and counted.

Balance (SugarCrepe's point: a negative must not be told apart by text alone). Lists of
two objects are in random order, so swaps use the same words in the same positions either
way. A replacement is recorded as a directed change (old -> new, with the context that
makes a value rarer: the size for a pattern, the pattern for a size) and the new value is
chosen to repay earlier changes the other way; then each change keeps as many pairs as its
reverse has, so no value is systematically the positive's or the negative's. The add_*
categories have no reverse (the negative is always the longer caption): their text-only
accuracy is reported, not balanced.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from finevl.data.formats import in_split, read_finecap
from finevl.data.sugarcrepe import SUGARCREPE_CATEGORIES, ComposePair
from finevl.errors import FinevlError
from finevl.language import vocab
from finevl.language.facts import scene_from_record
from finevl.language.grammar import is_false_of, is_true_of
from finevl.language.scene import Scene, SceneObject
from finevl.world.language import full_phrase, number_word, with_article

WORLD_CATEGORIES = (*SUGARCREPE_CATEGORIES, "count")
ATTRIBUTES = ("size", "color", "pattern")
VALUES = {"size": vocab.SIZES, "color": vocab.COLORS, "pattern": vocab.PATTERNS}


class Draft(NamedTuple):
    """A pair before its checks; `key` = (group, old, new) for a balanced replacement."""

    category: str
    positive: str
    negative: str
    key: tuple[Any, str, str] | None = None


@dataclass
class _Context:
    """State shared over a set: directed change counts, and (size, pattern) of real objects."""

    pool: list[tuple[str, str]]
    changes: Counter = field(default_factory=Counter)

    def choose(self, rng: random.Random, group: Any, old: str, candidates: list[str]) -> str | None:
        """A new value, preferring those that repay earlier changes the other way."""
        if not candidates:
            return None
        debt = {b: self.changes[(group, b, old)] - self.changes[(group, old, b)] for b in candidates}
        best = max(debt.values())
        return rng.choice([b for b in candidates if debt[b] == best])


def _sentence(scene: Scene, body: str) -> str:
    text = f"{body} on {vocab.BACKGROUNDS[scene.background][0]}."
    return text[0].upper() + text[1:]


def _phrase(obj: SceneObject, kinds: tuple[str, ...]) -> str:
    """'a small striped star': only the attributes in `kinds`, in canonical order."""
    words = [getattr(obj, k) for k in ATTRIBUTES if k in kinds]
    return with_article(" ".join([*words, obj.shape]))


def _taken(scene: Scene) -> set[tuple[str, str]]:
    return {(o.color, o.shape) for o in scene.objects}


def _colors(scene: Scene, shape: str) -> list[str]:
    """Colours the world could draw a `shape` in here: visible on the background, and the
    name (colour, shape) not already another object's."""
    low, taken = vocab.LOW_CONTRAST[scene.background], _taken(scene)
    return [c for c in vocab.COLORS if c not in low and (c, shape) not in taken]


def _new_values(scene: Scene, obj: SceneObject, kind: str) -> list[str]:
    if kind == "color":
        return _colors(scene, obj.shape)
    return [v for v in VALUES[kind] if v != getattr(obj, kind)]


def _both(rng: random.Random, scene: Scene, a: str, b: str) -> str:
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    return _sentence(scene, f"{first} and {second}")


def replace_obj(scene: Scene, rng: random.Random, ctx: _Context) -> Draft | None:
    obj = rng.choice(scene.objects)
    taken = _taken(scene)
    shapes = [s for s in vocab.SHAPES if s != obj.shape and (obj.color, s) not in taken]
    new = ctx.choose(rng, "shape", obj.shape, shapes)
    if new is None:
        return None
    neg = full_phrase(replace(obj, shape=new))
    return Draft(
        "replace_obj", _sentence(scene, full_phrase(obj)), _sentence(scene, neg), ("shape", obj.shape, new)
    )


def replace_att(scene: Scene, rng: random.Random, ctx: _Context) -> Draft | None:
    obj, kind = rng.choice(scene.objects), rng.choice(ATTRIBUTES)
    group = {"size": ("size", obj.pattern), "pattern": ("pattern", obj.size), "color": ("color",)}[kind]
    old = getattr(obj, kind)
    new = ctx.choose(rng, group, old, _new_values(scene, obj, kind))
    if new is None:
        return None
    neg = full_phrase(replace(obj, **{kind: new}))
    return Draft("replace_att", _sentence(scene, full_phrase(obj)), _sentence(scene, neg), (group, old, new))


def replace_rel(scene: Scene, rng: random.Random, ctx: _Context) -> Draft | None:
    if len(scene.objects) < 2:
        return None
    i, j = rng.sample(range(len(scene.objects)), 2)
    true = scene.relations(i, j)
    rel = rng.choice(true)
    new = ctx.choose(rng, "relation", rel, [r for r in vocab.RELATIONS if r not in true])
    a, b = full_phrase(scene.objects[i]), full_phrase(scene.objects[j])
    pos, neg = _sentence(scene, f"{a} {rel} {b}"), _sentence(scene, f"{a} {new} {b}")
    return Draft("replace_rel", pos, neg, ("relation", rel, new))  # type: ignore[arg-type]


def swap_obj(scene: Scene, rng: random.Random, ctx: _Context) -> Draft | None:
    objs = scene.objects
    pairs = [(a, b) for a in objs for b in objs if a.shape < b.shape]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    flip = rng.random() < 0.5  # the order the two are listed in
    first, second = (b, a) if flip else (a, b)
    pos = f"{full_phrase(first)} and {full_phrase(second)}"
    one, two = replace(first, shape=second.shape), replace(second, shape=first.shape)
    neg = f"{full_phrase(one)} and {full_phrase(two)}"
    return Draft("swap_obj", _sentence(scene, pos), _sentence(scene, neg))


def swap_att(scene: Scene, rng: random.Random, ctx: _Context) -> Draft | None:
    objs = scene.objects
    options = [
        (a, b, kind)
        for i, a in enumerate(objs)
        for b in objs[i + 1 :]
        for kind in ATTRIBUTES
        if getattr(a, kind) != getattr(b, kind)
    ]
    if not options:
        return None
    a, b, kind = rng.choice(options)
    first, second = (b, a) if rng.random() < 0.5 else (a, b)
    pos = f"{full_phrase(first)} and {full_phrase(second)}"
    one = replace(first, **{kind: getattr(second, kind)})
    two = replace(second, **{kind: getattr(first, kind)})
    return Draft(
        "swap_att", _sentence(scene, pos), _sentence(scene, f"{full_phrase(one)} and {full_phrase(two)}")
    )


def add_obj(scene: Scene, rng: random.Random, ctx: _Context) -> Draft | None:
    obj = rng.choice(scene.objects)
    names = [(c, s) for s in vocab.SHAPES for c in _colors(scene, s)]
    if not names:
        return None
    color, shape = rng.choice(names)
    size, pattern = rng.choice(ctx.pool)  # as common as real objects' (size, pattern)
    extra = SceneObject(shape, color, size, pattern, 0.0, 0.0, 0.0)
    pos = _sentence(scene, full_phrase(obj))
    return Draft("add_obj", pos, _both(rng, scene, full_phrase(obj), full_phrase(extra)))


def add_att(scene: Scene, rng: random.Random, ctx: _Context) -> Draft | None:
    obj, kind = rng.choice(scene.objects), rng.choice(ATTRIBUTES)
    kept = tuple(k for k in ATTRIBUTES if k != kind and rng.random() < 0.5)
    new = rng.choice(_new_values(scene, obj, kind) or [None])
    if new is None:
        return None
    neg = _phrase(replace(obj, **{kind: new}), (*kept, kind))
    return Draft("add_att", _sentence(scene, _phrase(obj, kept)), _sentence(scene, neg))


def count(scene: Scene, rng: random.Random, ctx: _Context) -> Draft | None:
    n = len(scene.objects)
    new = ctx.choose(rng, "count", str(n), [str(m) for m in range(1, max(4, n) + 1) if m != n])

    def say(m: int) -> str:
        return f"{number_word(m)} {'shape' if m == 1 else 'shapes'}"

    return Draft("count", _sentence(scene, say(n)), _sentence(scene, say(int(new))), ("count", str(n), new))  # type: ignore[arg-type]


MAKERS: dict[str, Callable[[Scene, random.Random, _Context], Draft | None]] = {
    "replace_obj": replace_obj,
    "replace_att": replace_att,
    "replace_rel": replace_rel,
    "swap_obj": swap_obj,
    "swap_att": swap_att,
    "add_obj": add_obj,
    "add_att": add_att,
    "count": count,
}


@dataclass
class PairSet:
    """The checked pairs, and per category the pairs the parser rejected (`dropped`) and
    those removed to balance each change against its reverse (`balanced_out`)."""

    pairs: list[ComposePair]
    dropped: dict[str, int]
    balanced_out: dict[str, int]


def _balance(drafts: list[tuple[str, Draft]], rng: random.Random) -> tuple[list[tuple[str, Draft]], Counter]:
    """Keep, of each directed change, as many pairs as its reverse has (chosen at random)."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for k, (_, d) in enumerate(drafts):
        if d.key is not None:
            groups[d.key].append(k)
    keep = {k for k, (_, d) in enumerate(drafts) if d.key is None}
    for (group, old, new), idx in groups.items():
        keep |= set(rng.sample(idx, min(len(idx), len(groups.get((group, new, old), [])))))
    removed = Counter(d.category for k, (_, d) in enumerate(drafts) if k not in keep)
    return [drafts[k] for k in sorted(keep)], removed


def build_pairs(scenes: list[tuple[str, dict[str, Any]]], seed: int = 0) -> PairSet:
    """Pairs of every category for each (image path, scene record), deterministic from
    `seed`; each positive checked true and each negative checked false by the parser."""
    rng = random.Random(f"finevl-compose-{seed}")
    ctx = _Context(pool=[(o["size"], o["pattern"]) for _, rec in scenes for o in rec["objects"]])
    drafts: list[tuple[str, Draft]] = []
    dropped: Counter = Counter()
    for image, record in scenes:
        scene = scene_from_record(record)
        for category, make in MAKERS.items():
            draft = make(scene, rng, ctx)
            if draft is None:
                continue
            if not (is_true_of(draft.positive, scene) and is_false_of(draft.negative, scene)):
                dropped[category] += 1
                continue
            if draft.key is not None:
                ctx.changes[draft.key] += 1
            drafts.append((image, draft))
    kept, removed = _balance(drafts, rng)
    kept.sort(key=lambda item: WORLD_CATEGORIES.index(item[1].category))  # stable: image order within
    pairs = [ComposePair(image, d.positive, d.negative, d.category) for image, d in kept]
    return PairSet(
        pairs, {c: dropped[c] for c in WORLD_CATEGORIES}, {c: removed[c] for c in WORLD_CATEGORIES}
    )


def world_scenes(
    world: str | Path, split: str | None = "test", limit: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(image path, scene record) of a world's split (None: all), in image order, the first
    `limit`."""
    world = Path(world)
    records = {r.image_id: r for r in read_finecap(world / "finecap.json")}
    ids = in_split(world, split, sorted(records))[:limit]
    if not ids:
        raise FinevlError(f"{world}: no images in split {split!r}")
    missing = [i for i in ids if records[i].scene is None]
    if missing:
        raise FinevlError(
            f"{world}/finecap.json: image {missing[0]} has no 'scene' record (not a FineShapes world?)"
        )
    return [(str(world / "images" / records[i].file_name), records[i].scene) for i in ids]  # type: ignore[misc]


def world_pairs(
    world: str | Path, split: str | None = "test", limit: int | None = None, seed: int = 0
) -> PairSet:
    """`build_pairs` on a generated world's split."""
    return build_pairs(world_scenes(world, split, limit), seed)
