"""`parse_caption`: a caption in the world's language back to facts, the exact oracle.

The parser is a lexicon scan. Phrases of the vocabulary (longest first) become items; a
noun phrase is the modifiers (size, colour, pattern) before a shape word, plus a trailing
"with stripes"/"with dots"; a relation joins the nearest free noun phrase before it (one
that is not already the object of a relation) to the next noun phrase after it, within a
sentence; a number before "shapes"/"objects"/"things" is a count; a quoted string is text.
Words outside the lexicon are returned as `unknown`, which a degenerate-text metric counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from finevl.language import vocab
from finevl.language.facts import Fact, fact_holds, scene_from_record
from finevl.language.scene import Scene

_TOKEN = re.compile(r'"([^"]*)"|([A-Za-z0-9]+(?:-[A-Za-z0-9]+)*)|([.,;:!?])')
# fmt: off
_FILLERS = {
    "a", "an", "the", "is", "are", "on", "in", "with", "and", "of", "there", "picture", "photo",
    "image", "some", "it", "says", "word", "at", "top", "bottom", "left", "right", "middle",
    "center", "this", "that",
}
# fmt: on
_SENTENCE_END = {".", ";", "!", "?", ":"}


def _lexicon() -> dict[tuple[str, ...], tuple[str, str]]:
    table: dict[tuple[str, ...], tuple[str, str]] = {}
    groups = [
        ("background", vocab.BACKGROUNDS),
        ("shape", vocab.SHAPES),
        ("color", vocab.COLORS),
        ("size", vocab.SIZES),
        ("pattern", vocab.PATTERNS),
        ("relation", vocab.RELATIONS),
    ]
    for kind, words in groups:
        for value, phrases in words.items():
            for phrase in phrases:
                key = tuple(phrase.split())
                if key in table and table[key] != (kind, value):
                    raise AssertionError(f"ambiguous phrase {phrase!r}")
                table[key] = (kind, value)
    for shape, nouns in vocab.SHAPES.items():
        for noun in (n for n in nouns if " " not in n):  # plurals: "two red stars"
            table.setdefault((noun + ("es" if noun.endswith(("s", "x")) else "s"),), ("shape", shape))
    table[("with", "stripes")] = ("post_pattern", "striped")
    table[("with", "dots")] = ("post_pattern", "dotted")
    for n, word in enumerate(vocab.NUMBERS):
        table[(word,)] = ("number", str(n))
    for noun in vocab.COUNT_NOUNS:
        table[(noun,)] = ("count_noun", noun)
    return table


LEXICON = _lexicon()
_MAX_PHRASE = max(len(k) for k in LEXICON)


@dataclass
class _NounPhrase:
    shape: str
    color: str | None = None
    size: str | None = None
    pattern: str | None = None
    is_object: bool = False  # already the object of a relation

    @property
    def ref(self) -> str:
        return f"{self.color} {self.shape}" if self.color else self.shape


@dataclass
class ParsedCaption:
    """What a caption says: its facts, and the words the world's language does not know."""

    facts: set[Fact] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)


def _items(text: str, unknown: list[str]) -> list[tuple[str, str]]:
    """Scan `text` into (kind, value) items; fillers vanish, unknown words are recorded."""
    raw: list[tuple[str, str]] = []
    for quoted, word, punct in _TOKEN.findall(text):
        if quoted:
            raw.append(("text", quoted))
        elif word:
            raw.append(("word", word.lower()))
        else:
            raw.append(("punct", punct))
    items: list[tuple[str, str]] = []
    i = 0
    while i < len(raw):
        kind, value = raw[i]
        if kind != "word":
            items.append(raw[i])
            i += 1
            continue
        for span in range(_MAX_PHRASE, 0, -1):
            words = tuple(v for k, v in raw[i : i + span] if k == "word")
            if len(words) == span and words in LEXICON:
                items.append(LEXICON[words])
                i += span
                break
        else:
            if value.isdigit():
                items.append(("number", value))
            elif value not in _FILLERS:
                unknown.append(value)
            i += 1
    return items


def _noun_phrases(items: list[tuple[str, str]], out: ParsedCaption) -> list[object]:
    """Fold modifiers into noun phrases; emit background, text and count facts."""
    seq: list[object] = []
    mods: dict[str, str] = {}
    for k, (kind, value) in enumerate(items):
        if kind in ("color", "size", "pattern"):
            mods[kind] = value
        elif kind == "shape":
            seq.append(_NounPhrase(value, **mods))
            mods = {}
        elif kind == "post_pattern" and seq and isinstance(seq[-1], _NounPhrase):
            seq[-1].pattern = value
        elif kind == "number" and k + 1 < len(items) and items[k + 1][0] == "count_noun":
            out.facts.add(Fact("count", value=value))
        elif kind == "count_noun":
            mods = {}  # "a red thing next to a star": the colour is the thing's, not the star's
        elif kind == "background":
            out.facts.add(Fact("background", value=value))
        elif kind == "text":
            out.facts.add(Fact("text", value=value))
        elif kind == "relation":
            seq.append(("relation", value))
        elif kind == "punct":
            mods = {}
            if value in _SENTENCE_END:
                seq.append("end")
    return seq


def _relations(seq: list[object], out: ParsedCaption) -> None:
    for k, item in enumerate(seq):
        if not (isinstance(item, tuple) and item[0] == "relation"):
            continue
        subject = obj = None
        for prev in reversed(seq[:k]):
            if prev == "end":
                break
            if isinstance(prev, _NounPhrase) and not prev.is_object:
                subject = prev
                break
        for nxt in seq[k + 1 :]:
            if nxt == "end" or isinstance(nxt, tuple):
                break
            if isinstance(nxt, _NounPhrase):
                obj = nxt
                break
        if subject is not None and obj is not None:
            obj.is_object = True
            out.facts.add(Fact("relation", subject.ref, item[1], obj.ref))


def parse_caption(text: str) -> ParsedCaption:
    """Read a caption back into facts.

    >>> for fact in sorted(map(str, parse_caption("A small red star left of a ball on snow.").facts)):
    ...     print(fact)
    background: snow
    object: circle
    object: red star
    relation: red star | left of | circle
    size: red star = small
    """
    out = ParsedCaption()
    seq = _noun_phrases(_items(text, out.unknown), out)
    for item in seq:
        if isinstance(item, _NounPhrase):
            out.facts.add(Fact("object", item.ref))
            if item.size:
                out.facts.add(Fact("size", item.ref, item.size))
            if item.pattern:
                out.facts.add(Fact("pattern", item.ref, item.pattern))
    _relations(seq, out)
    return out


def is_false_of(caption: str, scene: Scene) -> bool:
    """Whether the parser reads a fact from `caption` that does not hold of `scene`."""
    return any(not fact_holds(f, scene) for f in parse_caption(caption).facts)


def is_true_of(caption: str, scene: Scene) -> bool:
    """Whether `caption` states at least one fact and every fact it states holds of `scene`."""
    facts = parse_caption(caption).facts
    return bool(facts) and all(fact_holds(f, scene) for f in facts)


def caption_is_false(caption: str, scene_record: dict[str, Any]) -> bool:
    """Whether the world's parser reads a fact from `caption` that does not hold of the
    scene (a finecap.json record's `scene`). Words it cannot read state nothing: a caption
    with no readable fact is not false.

    >>> rec = {"size": 64, "background": "snow", "objects": [{"shape": "star", "color": "red",
    ...     "size": "small", "pattern": "solid", "center": [20, 20], "radius": 5}]}
    >>> caption_is_false("a small red star on snow", rec), caption_is_false("a blue star", rec)
    (False, True)
    """
    return is_false_of(caption, scene_from_record(scene_record))


def caption_is_true(caption: str, scene_record: dict[str, Any]) -> bool:
    """Whether `caption` states at least one fact and every fact it states holds."""
    return is_true_of(caption, scene_from_record(scene_record))
