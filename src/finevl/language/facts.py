"""Facts: the atoms of ground truth, grouped by FineCapEval's criteria.

A fact names its objects by reference: "red star" (colour and shape, unique in a scene) or
just "star" when a caption leaves the colour out. `scene_facts` lists what the fine caption
states; `fact_holds` decides whether any fact, however partial, is true of a scene.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from finevl.language.scene import Scene, SceneObject

CRITERIA = ("background", "object", "relation", "text")
_CRITERION = {
    "background": "background",
    "count": "object",
    "object": "object",
    "size": "object",
    "pattern": "object",
    "relation": "relation",
    "text": "text",
}


class Fact(NamedTuple):
    """One atomic statement. `subject`/`other` are object references, `value` the attribute."""

    kind: str
    subject: str = ""
    value: str = ""
    other: str = ""

    @property
    def criterion(self) -> str:
        return _CRITERION[self.kind]

    def __str__(self) -> str:
        if self.kind in ("background", "count", "text"):
            return f"{self.kind}: {self.value}"
        if self.kind == "object":
            return f"object: {self.subject}"
        if self.kind == "relation":
            return f"relation: {self.subject} | {self.value} | {self.other}"
        return f"{self.kind}: {self.subject} = {self.value}"


def by_criterion(facts: set[Fact] | frozenset[Fact]) -> dict[str, list[str]]:
    """Facts as sorted strings under each criterion (every criterion present)."""
    out: dict[str, list[str]] = {c: [] for c in CRITERIA}
    for fact in facts:
        out[fact.criterion].append(str(fact))
    return {c: sorted(v) for c, v in out.items()}


def stated_relations(scene: Scene) -> list[tuple[int, str, int]]:
    """The relations a fine caption states, at most two so it fits CLIP's 77 tokens:
    a chain over three objects, disjoint pairs over four (so every object takes part)."""
    n = len(scene.objects)
    pairs = [(0, 1), (1, 2)] if n == 3 else [(k, k + 1) for k in range(0, n - 1, 2)]
    return [(i, scene.main_relation(i, j), j) for i, j in pairs]


def scene_facts(scene: Scene) -> frozenset[Fact]:
    """Every fact the fine caption of `scene` states, fully qualified."""
    facts = {Fact("background", value=scene.background), Fact("count", value=str(len(scene.objects)))}
    for obj in scene.objects:
        facts |= {
            Fact("object", obj.ref),
            Fact("size", obj.ref, obj.size),
            Fact("pattern", obj.ref, obj.pattern),
        }
    for i, rel, j in stated_relations(scene):
        facts.add(Fact("relation", scene.objects[i].ref, rel, scene.objects[j].ref))
    if scene.text:
        facts.add(Fact("text", value=scene.text))
    return frozenset(facts)


def region_facts(scene: Scene, k: int) -> frozenset[Fact]:
    """Every fact a detailed description of object k states: the object (colour and shape),
    its size and pattern, and its relation to each other object."""
    obj = scene.objects[k]
    facts = {Fact("object", obj.ref), Fact("size", obj.ref, obj.size), Fact("pattern", obj.ref, obj.pattern)}
    for j, other in enumerate(scene.objects):
        if j != k:
            facts.add(Fact("relation", obj.ref, scene.main_relation(k, j), other.ref))
    return frozenset(facts)


def holds_of_object(fact: Fact, scene: Scene, k: int) -> bool:
    """Whether `fact` is true *of object k*: its subject can name k (a partial reference
    counts) and k itself has the attribute or the relation. Background, count and text facts
    are about no object."""
    if fact.kind not in ("object", "size", "pattern", "relation") or k not in _matches(scene, fact.subject):
        return False
    if fact.kind in ("size", "pattern"):
        return getattr(scene.objects[k], fact.kind) == fact.value
    if fact.kind == "relation":
        return any(fact.value in scene.relations(k, j) for j in _matches(scene, fact.other) if j != k)
    return True


def _matches(scene: Scene, ref: str) -> list[int]:
    words = ref.split()
    if not words:
        return []
    return [
        k
        for k, o in enumerate(scene.objects)
        if words[-1] == o.shape and (len(words) == 1 or words[0] == o.color)
    ]


def fact_holds(fact: Fact, scene: Scene) -> bool:
    """Whether `fact` is true of `scene`; a partial reference needs one matching object."""
    if fact.kind == "background":
        return fact.value == scene.background
    if fact.kind == "count":
        return fact.value == str(len(scene.objects))
    if fact.kind == "text":
        return scene.text is not None and fact.value.upper() == scene.text.upper()
    subjects = _matches(scene, fact.subject)
    if fact.kind == "object":
        return bool(subjects)
    if fact.kind in ("size", "pattern"):
        return any(getattr(scene.objects[k], fact.kind) == fact.value for k in subjects)
    if fact.kind == "relation":
        others = _matches(scene, fact.other)
        return any(fact.value in scene.relations(i, j) for i in subjects for j in others if i != j)
    raise ValueError(f"unknown fact kind {fact.kind!r}")


def scene_from_record(record: dict[str, Any]) -> Scene:
    """Rebuild a scene's facts from its stored `scene` record (finecap.json), so fact
    precision of any caption can be judged from the files alone (no masks needed)."""
    objects = [
        SceneObject(
            o["shape"], o["color"], o["size"], o["pattern"], o["center"][0], o["center"][1], o["radius"]
        )
        for o in record["objects"]
    ]
    return Scene(
        size=record["size"],
        background=record["background"],
        objects=objects,
        depth=list(range(len(objects))),
        text=record.get("text"),
        occludes=frozenset((i, j) for i, j in record.get("occludes", [])),
    )
