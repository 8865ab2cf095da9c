"""The scene record: what is in an image (objects, their attributes and places, depth,
occlusion, text). Pure data, read by the facts oracle; `finevl.world.scene` samples and
paints scenes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str
    pattern: str
    cx: float
    cy: float
    radius: float

    @property
    def ref(self) -> str:
        """The object's name, unique in its scene: colour and shape."""
        return f"{self.color} {self.shape}"


@dataclass
class Scene:
    """One image's content. `objects` are listed in caption order (largest first, then
    left to right); `depth` gives the drawing order (back to front)."""

    size: int
    background: str
    objects: list[SceneObject]
    depth: list[int]
    text: str | None = None
    text_box: tuple[int, int] | None = None
    texture: tuple[int, int, int, float] = (0, 0, 0, 1.0)  # variant, x, y offsets, gain
    occludes: frozenset[tuple[int, int]] = frozenset()  # (i, j): i is in front of j
    painted: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)
    visible: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)
    text_mask: np.ndarray | None = field(default=None, repr=False, compare=False)

    def relations(self, i: int, j: int) -> list[str]:
        """Every relation that holds from object i to object j (spatial first)."""
        a, b = self.objects[i], self.objects[j]
        dx, dy = b.cx - a.cx, b.cy - a.cy
        if abs(dx) >= abs(dy):
            rels = ["left of" if dx > 0 else "right of"]
        else:
            rels = ["above" if dy > 0 else "below"]
        if (i, j) in self.occludes:
            rels.append("in front of")
        elif (j, i) in self.occludes:
            rels.append("behind")
        return rels

    def main_relation(self, i: int, j: int) -> str:
        """The relation a caption states: occlusion when there is one, else the spatial one."""
        return self.relations(i, j)[-1]
