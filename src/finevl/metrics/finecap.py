"""Fine-grained caption metrics: FineShapes' exact fact oracle, FineCapEval's upstream
accuracy, and the rate of degenerate (repeating or unreadable) captions.

`FactScores` parses a caption back into facts (`grammar.parse_caption`) and checks each
against the scene, so precision and recall are exact, not lexical. `FinecapAccuracy` is the
word-overlap accuracy FineCapEval reports, for comparison with published numbers.
`DegenerateRate` counts the failures a CLIP-S reward is known to cause ("a red red star").
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

from finevl.language.facts import Fact, fact_holds, holds_of_object, region_facts, scene_facts
from finevl.language.grammar import parse_caption
from finevl.language.scene import Scene

FACT_CRITERIA = ("background", "object", "relation")
FINECAP_CRITERIA = ("background", "object", "relation")

# ----------------------------------------------------------------------------------------
# Exact fact precision / recall


def _fact_counts(caption: str, scene: Scene, region: int | None = None) -> Counter[str]:
    """Per-caption counts: stated/held/truth/recalled per criterion and 'all', plus
    unparseable. With `region`, the truth is that object's facts and a stated fact holds
    only when it is true and about that object."""
    parsed = parse_caption(caption)
    truth = scene_facts(scene) if region is None else region_facts(scene, region)
    if region is not None:  # the objects a region is related to are not claims about it
        targets = {f.other for f in parsed.facts if f.kind == "relation"}
        parsed.facts = {f for f in parsed.facts if not (f.kind == "object" and f.subject in targets)}
    counts: Counter[str] = Counter(captions=1, unparseable=int(bool(parsed.unknown)))

    def holds(fact: Fact) -> bool:
        return fact_holds(fact, scene) if region is None else holds_of_object(fact, scene, region)

    def add(group: str, stated: set[Fact], true: set[Fact]) -> None:
        counts[f"stated/{group}"] += len(stated)
        counts[f"held/{group}"] += sum(holds(f) for f in stated)
        counts[f"truth/{group}"] += len(true)
        counts[f"recalled/{group}"] += len(stated & true)

    for c in FACT_CRITERIA:
        add(c, {f for f in parsed.facts if f.criterion == c}, {f for f in truth if f.criterion == c})
    add("all", parsed.facts, set(truth))
    return counts


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _fact_summary(counts: Counter[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for group in (*FACT_CRITERIA, "all"):
        p = _ratio(counts[f"held/{group}"], counts[f"stated/{group}"])
        r = _ratio(counts[f"recalled/{group}"], counts[f"truth/{group}"])
        out |= {f"precision/{group}": p, f"recall/{group}": r, f"f1/{group}": _ratio(2 * p * r, p + r)}
    out["unknown_word_rate"] = _ratio(counts["unparseable"], counts["captions"])
    return out


class FactScores:
    """Exact fact precision, recall and F1 per FineCapEval criterion and over all facts.

    Precision: of the facts a caption states (parsed), the share true of the scene
    (`fact_holds`, so "a star" is right whenever some star is there). Recall: of the facts
    the scene's fine caption states (`scene_facts`), the share the caption states exactly
    (colour and shape named). "all" also holds count and text facts. Micro-averaged: counts
    are summed over captions, so a caption stating no relation adds nothing to relation
    precision, and a one-object scene (no relation to state) nothing to relation recall. A
    ratio whose summed denominator is zero is 0.0 (a captioner that never states a relation
    gets no relation credit), and F1 is 0.0 when precision and recall are both 0.
    `unknown_word_rate`: captions with a word outside the world's language. With
    `update(..., region=k)` the caption describes object k alone (Osprey's detailed region
    description): the truth is that object's facts (`region_facts`), a stated fact counts as
    held only when it is true of object k itself, and the objects it is related to are not
    claims about it.

    >>> import random
    >>> from finevl.world.language import fine_caption
    >>> from finevl.world.scene import sample_scene
    >>> scene = sample_scene(random.Random(0))
    >>> m = FactScores()
    >>> m.update(fine_caption(scene), scene)
    >>> m.compute()["f1/all"]
    1.0
    """

    higher_is_better = True

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def update(self, caption: str, scene: Scene, region: int | None = None) -> None:
        """Add one caption of `scene` (or a description of its object `region`)."""
        self.counts.update(_fact_counts(caption, scene, region))

    def compute(self) -> dict[str, float]:
        return _fact_summary(self.counts)


def fact_scores(captions: list[str], scenes: list[Scene]) -> dict[str, float]:
    """Functional `FactScores` over row-aligned captions and scenes."""
    counts: Counter[str] = Counter()
    for caption, scene in zip(captions, scenes, strict=True):
        counts.update(_fact_counts(caption, scene))
    return _fact_summary(counts)


# ----------------------------------------------------------------------------------------
# FineCapEval accuracy (upstream, lexical)

_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]")


@lru_cache(maxsize=1)
def _nltk() -> tuple[Any, Any]:
    from nltk.stem.porter import PorterStemmer
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer(), PorterStemmer()


def _stems(text: str, upstream_order: bool = False) -> list[str]:
    """Lowercased Treebank tokens, Porter-stemmed, with non-alphanumerics removed.

    Upstream stems first and strips after ("stars." stays "stars"); by default we strip
    first, so punctuation glued to a word by the tokenizer does not block its stemming."""
    tokenizer, stemmer = _nltk()
    tokens = tokenizer.tokenize(text.lower())
    if upstream_order:
        words = [_NON_ALNUM.sub("", stemmer.stem(t)) for t in tokens]
    else:
        words = [stemmer.stem(w) for w in (_NON_ALNUM.sub("", t) for t in tokens) if w]
    return [w for w in words if w]


def finecap_accuracy(prediction: str, phrases: list[str], substring: bool = False) -> float | None:
    """FineCapEval's accuracy of one prediction for one criterion of one image, in [0, 1].

    For each reference phrase, the share of its stemmed words that occur among the
    prediction's stemmed words; the mean over phrases. Phrases with no words are dropped;
    None when no phrase is left (upstream would count the image as 0; `FinecapAccuracy`
    skips it, so a one-object scene, with no relation to state, does not lower relation
    accuracy).

    `substring=True` reproduces upstream's test exactly: a stemmed phrase word counts when it
    is a *substring* of the raw prediction, so "red" is found in "colored" and "poni" (the
    stem of "pony") is not found in "pony".

    >>> round(finecap_accuracy("two stars on snow: a red star", ["a red star", "the blue stars"]), 3)
    0.667
    """
    kept = [p for p in (_stems(ph, substring) for ph in phrases) if p]
    if not kept:
        return None
    if substring:
        return sum(sum(w in prediction for w in p) / len(p) for p in kept) / len(kept)
    pred = set(_stems(prediction))
    return sum(sum(w in pred for w in p) / len(p) for p in kept) / len(kept)


class FinecapAccuracy:
    """FineCapEval accuracy per criterion: mean over images of `finecap_accuracy`, x100.

    Images without phrases for a criterion are skipped for that criterion (upstream counts
    them as 0: `empty_as_zero`, or `FinecapAccuracy.upstream()`); a criterion with no image
    at all reports 0.0.
    """

    higher_is_better = True

    def __init__(self, substring: bool = False, empty_as_zero: bool = False) -> None:
        self.substring, self.empty_as_zero = substring, empty_as_zero
        self.total = dict.fromkeys(FINECAP_CRITERIA, 0.0)
        self.n = dict.fromkeys(FINECAP_CRITERIA, 0)

    @classmethod
    def upstream(cls) -> FinecapAccuracy:
        """Upstream's script exactly: stemmed phrase words as substrings of the raw prediction,
        images without phrases counted as 0."""
        return cls(substring=True, empty_as_zero=True)

    def update(self, prediction: str, phrases_by_criterion: dict[str, list[str]]) -> None:
        for c in FINECAP_CRITERIA:
            acc = finecap_accuracy(prediction, phrases_by_criterion.get(c, []), self.substring)
            if acc is not None or self.empty_as_zero:
                self.total[c] += acc or 0.0
                self.n[c] += 1

    def compute(self) -> dict[str, float]:
        return {c: 100 * _ratio(self.total[c], self.n[c]) for c in FINECAP_CRITERIA}


# ----------------------------------------------------------------------------------------
# Degenerate captions

MAX_NGRAM = 4  # longer consecutive repeats occur in true text: "left of the red circle, left of the red"
_DEGEN_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[^\sa-z0-9]")
_CLAUSE = re.compile(r"[.,!?;:]+")


def _tokens(caption: str) -> list[str]:
    """Lowercased words, with each punctuation mark a token of its own."""
    return _DEGEN_TOKEN.findall(caption.lower())


def repeated_ngram(caption: str, n: int) -> bool:
    """Whether some n-gram of tokens is immediately followed by itself ("a red red star",
    n=1; "on snow on snow", n=2). Punctuation marks are tokens, so "... the blue box. The
    blue box is ..." repeats nothing, while "a star. a star." repeats "a star ." (n=3)."""
    t = _tokens(caption)
    return any(t[i : i + n] == t[i + n : i + 2 * n] for i in range(len(t) - 2 * n + 1))


def repeated_clause(caption: str) -> bool:
    """Whether a clause (text between . , ! ? ; :) is said twice anywhere, ignoring case."""
    clauses = [" ".join(_tokens(c)) for c in _CLAUSE.split(caption)]
    said = [c for c in clauses if c]
    return len(said) != len(set(said))


def _stutters(caption: str) -> bool:
    return any(repeated_ngram(caption, n) for n in range(1, MAX_NGRAM + 1))


def degenerate(caption: str) -> bool:
    """Whether a caption repeats itself: an n-gram (n = 1..4, punctuation marks counted as
    tokens) immediately followed by itself (`repeated_ngram`), or a clause said twice
    anywhere (`repeated_clause`: "a red star on snow, a red star on snow").

    A 3-gram repeated elsewhere is *not* enough, nor a long consecutive repeat: the world's
    own fine captions and region descriptions do both ("a medium purple dotted heart, a
    medium purple solid triangle"; "right of the green square. The green square is left
    of"; "left of the yellow circle, left of the yellow square").

    >>> degenerate("a red red star"), degenerate("a red star on snow on snow")
    (True, True)
    >>> degenerate("The red star is left of the blue box. The blue box is above the green circle.")
    False
    """
    return _stutters(caption) or repeated_clause(caption)


def unparseable(caption: str) -> bool:
    """Words outside the world's language, or no fact at all: text the oracle cannot read."""
    parsed = parse_caption(caption)
    return bool(parsed.unknown) or not parsed.facts


class DegenerateRate:
    """Shares of captions that are `degenerate`, that stutter (an n-gram immediately
    repeated: the `repeated_ngram` part of degenerate), and that are `unparseable` (unknown
    words or no fact). Lower is better.
    """

    higher_is_better = False

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def update(self, caption: str) -> None:
        stutter = _stutters(caption)
        self.counts.update(
            captions=1,
            repetition=int(stutter),
            degenerate=int(stutter or repeated_clause(caption)),
            unparseable=int(unparseable(caption)),
        )

    def compute(self) -> dict[str, float]:
        n = self.counts["captions"]
        return {
            "degenerate_rate": _ratio(self.counts["degenerate"], n),
            "repetition_rate": _ratio(self.counts["repetition"], n),
            "unparseable_rate": _ratio(self.counts["unparseable"], n),
        }
