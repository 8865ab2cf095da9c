"""Compositional hard negatives (NegCLIP, Yuksekgonul et al. 2023): captions that differ from a
true caption by one fact, for the text side of CLIP's image-to-text softmax.

A negative edits the caption actually drawn for the image, so it has the same length,
detail and wording as the positive and only the changed fact tells them apart. Three kinds:

- replace: one attribute word (shape, colour, size, pattern or background) becomes a word of
  another value of the same attribute ("a red star" -> "a blue star");
- swap: two words of one attribute with different values trade places ("a red star and a
  blue disc" -> "a blue star and a red disc"; two shapes: two objects swapped);
- relation: a relation phrase becomes its inverse ("left of" -> "right of").

The words come from a `NegativeVocab` (`--negative-vocab FILE`, or the FineShapes world's),
and where the data has facts, a `check(negative, scene)` callable (the world's parser, passed
in by the caller so this layer does not import the world) keeps only negatives that are false
of the image: "a blue star" is not a negative of an image that also has a blue star.

>>> vocab = NegativeVocab({"color": {"red": ["red"], "blue": ["blue"]}}, {})
>>> HardNegatives(vocab, k=1)("a red star.", random.Random(0))
['a blue star.']
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finevl.data.jsonio import read_json
from finevl.errors import FinevlError
from finevl.language import vocab

Check = Callable[[str, dict[str, Any]], bool]  # (negative caption, scene record) -> is it false?


@dataclass
class NegativeVocab:
    """Attribute -> value -> the words that say it; relation -> its inverse (both keys of
    `relation_words`, which maps each relation to its words)."""

    attributes: dict[str, dict[str, list[str]]]
    inverse: dict[str, str]
    relation_words: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> NegativeVocab:
        """Read a vocabulary JSON: `{"attributes": {attr: {value: [words]}}, "relations":
        {relation: {"words": [words], "inverse": relation}}}`."""
        raw = read_json(path)
        try:
            attrs = {
                a: {v: [str(w) for w in ws] for v, ws in vals.items()}
                for a, vals in raw["attributes"].items()
            }
            rels = raw.get("relations", {})
            vocab = cls(
                attrs,
                {r: str(d["inverse"]) for r, d in rels.items()},
                {r: list(d["words"]) for r, d in rels.items()},
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise FinevlError(f"{path}: not a negative vocabulary ({err!s}); see docs/clip.md") from None
        vocab.validate(str(path))
        return vocab

    def validate(self, where: str) -> None:
        if not any(len(vals) > 1 for vals in self.attributes.values()) and not self.inverse:
            raise FinevlError(
                f"{where}: the negative vocabulary has no attribute with two values and no relation"
            )
        if any(inv not in self.relation_words for inv in self.inverse.values()):
            raise FinevlError(f"{where}: a relation's inverse has no words")

    def to_json(self) -> dict[str, Any]:
        """The file layout `from_file` reads."""
        rels = {r: {"words": self.relation_words[r], "inverse": inv} for r, inv in self.inverse.items()}
        return {"attributes": self.attributes, "relations": rels}


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str  # an attribute name, or "relation"
    value: str


class HardNegatives:
    """`k` hard negatives of a caption, each a single edit, checked against the scene when
    one is given. Fewer than `k` come back when the caption has too few editable words."""

    def __init__(self, vocab: NegativeVocab, k: int, check: Check | None = None, tries: int = 4):
        if k < 1:
            raise FinevlError("--hard-negatives must be >= 1")
        self.vocab, self.k, self.check, self.tries = vocab, k, check, tries
        self._pattern, self._meaning = _word_pattern(vocab)

    def spans(self, caption: str) -> list[_Span]:
        """Every vocabulary word or phrase in the caption (longest match, whole words)."""
        out = []
        for m in self._pattern.finditer(caption):
            kind, value = self._meaning[m.group(0).lower()]
            out.append(_Span(m.start(), m.end(), kind, value))
        return out

    def __call__(self, caption: str, rng: random.Random, scene: dict[str, Any] | None = None) -> list[str]:
        spans = self.spans(caption)
        found: list[str] = []
        for _ in range(self.k * self.tries):
            if len(found) == self.k:
                break
            negative = self._edit(caption, spans, rng)
            if negative is None:
                break  # nothing editable
            if negative in found or negative == caption:
                continue
            if scene is not None and self.check is not None and not self.check(negative, scene):
                continue
            found.append(negative)
        return found

    def _edit(self, caption: str, spans: list[_Span], rng: random.Random) -> str | None:
        edits: list[Callable[[], str]] = []
        for s in spans:
            if s.kind == "relation":
                edits.append(
                    lambda s=s: _put(caption, [(s, self._inverse(caption[s.start : s.end], s.value))])
                )
            elif len(self.vocab.attributes[s.kind]) > 1:
                edits.append(lambda s=s: _put(caption, [(s, self._word(s.kind, self._other(s, rng), rng))]))
        pairs = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if _swappable(a, b)]
        if pairs:
            edits.append(lambda: _swap(caption, *rng.choice(pairs)))
        return rng.choice(edits)() if edits else None

    def _other(self, span: _Span, rng: random.Random) -> str:
        return rng.choice([v for v in self.vocab.attributes[span.kind] if v != span.value])

    def _inverse(self, said: str, relation: str) -> str:
        """The inverse relation in the same register ("to the left of" -> "to the right of")."""
        k = [w.lower() for w in self.vocab.relation_words[relation]].index(said.lower())
        words = self.vocab.relation_words[self.vocab.inverse[relation]]
        return words[min(k, len(words) - 1)]

    def _word(self, kind: str, value: str, rng: random.Random) -> str:
        return rng.choice(self.vocab.attributes[kind][value])


def _swappable(a: _Span, b: _Span) -> bool:
    return a.kind == b.kind != "relation" and a.value != b.value


def _swap(caption: str, a: _Span, b: _Span) -> str:
    return _put(caption, [(a, caption[b.start : b.end]), (b, caption[a.start : a.end])])


def _put(caption: str, edits: list[tuple[_Span, str]]) -> str:
    """Replace spans (right to left, so offsets hold), keeping a capital first letter and
    mending the article before it ("a red" -> "an orange"): a wrong article would tell the
    negative from the text alone."""
    for span, word in sorted(edits, key=lambda e: -e[0].start):
        old = caption[span.start : span.end]
        word = word[:1].upper() + word[1:] if old[:1].isupper() else word.lower()
        caption = _article_for(caption[: span.start], word) + word + caption[span.end :]
    return caption


def _article_for(before: str, word: str) -> str:
    m = re.search(r"\b(an?)(\s+)$", before, re.IGNORECASE)
    if not m:
        return before
    article = "an" if word[:1].lower() in "aeiou" else "a"
    article = article.capitalize() if m.group(1)[0].isupper() else article
    return before[: m.start(1)] + article + m.group(2)


def _word_pattern(vocab: NegativeVocab) -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    meaning: dict[str, tuple[str, str]] = {}
    for attr, values in vocab.attributes.items():
        for value, words in values.items():
            meaning.update({w.lower(): (attr, value) for w in words})
    for rel, words in vocab.relation_words.items():
        meaning.update({w.lower(): ("relation", rel) for w in words})
    alternatives = sorted(meaning, key=len, reverse=True)  # longest first: "to the left of" before "left of"
    return re.compile(r"\b(?:" + "|".join(map(re.escape, alternatives)) + r")\b", re.IGNORECASE), meaning


def negative_vocab() -> NegativeVocab:
    """FineShapes' words for hard negatives (`finevl clip train --hard-negatives`): each
    attribute's values with all their synonyms, and each relation with its inverse."""
    attributes = {"shape": vocab.SHAPES, "color": vocab.COLORS, "size": vocab.SIZES}
    attributes |= {"pattern": vocab.PATTERNS, "background": vocab.BACKGROUNDS}
    return NegativeVocab(
        {a: {v: list(ws) for v, ws in vals.items()} for a, vals in attributes.items()},
        dict(vocab.INVERSE_RELATION),
        {r: list(ws) for r, ws in vocab.RELATIONS.items()},
    )
