"""Ungrammatical negatives made from a reference caption, as seed 000's grammar head is
trained on: one negative per caption, its kind chosen uniformly among five.

- repeat: a 1-3-gram inserted again right after itself, 1-3 times;
- remove: a 1-3-gram deleted;
- insert: 1-3 random vocabulary words inserted;
- swap: 1-3 tokens replaced by random vocabulary words;
- shuffle: all tokens permuted.

Tokens are whitespace words (a final full stop kept apart), so the negatives read like text.

>>> import random
>>> caption = "a red star on snow."
>>> make_negative(caption, random.Random(0), ["box"], kind="shuffle")[0] != caption
True
"""

from __future__ import annotations

import random

KINDS = ("repeat", "remove", "insert", "swap", "shuffle")


def _words(caption: str) -> tuple[list[str], str]:
    text = caption.strip()
    end = "." if text.endswith(".") else ""
    return text.removesuffix(".").split(), end


def repeat(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    n = rng.randint(1, min(3, len(words)))
    i = rng.randrange(len(words) - n + 1)
    gram = words[i : i + n]
    return words[: i + n] + gram * rng.randint(1, 3) + words[i + n :]


def remove(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    n = rng.randint(1, min(3, len(words) - 1))  # leave at least one word
    i = rng.randrange(len(words) - n + 1)
    return words[:i] + words[i + n :]


def insert(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    out = list(words)
    for _ in range(rng.randint(1, 3)):
        out.insert(rng.randint(0, len(out)), rng.choice(vocab))
    return out


def swap(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    out = list(words)
    for i in rng.sample(range(len(out)), min(len(out), rng.randint(1, 3))):
        out[i] = rng.choice([w for w in vocab if w != out[i]] or vocab)
    return out


def shuffle(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    out = list(words)
    for _ in range(10):  # a permutation that differs (unless every word is the same)
        rng.shuffle(out)
        if out != words:
            break
    return out


_MAKERS = {"repeat": repeat, "remove": remove, "insert": insert, "swap": swap, "shuffle": shuffle}


def make_negative(
    caption: str, rng: random.Random, vocab: list[str], kind: str | None = None
) -> tuple[str, str]:
    """(negative caption, its kind); `kind` drawn uniformly from KINDS unless given.
    Captions of one word cannot lose one: `remove` falls back to `insert` there."""
    words, end = _words(caption)
    if not words:
        raise ValueError("cannot corrupt an empty caption")
    kind = kind or rng.choice(KINDS)
    if kind == "remove" and len(words) < 2:
        kind = "insert"
    return " ".join(_MAKERS[kind](words, rng, vocab)) + end, kind


def caption_vocabulary(captions: list[str]) -> list[str]:
    """The words of a caption corpus (sorted, lower-case): what insert and swap draw from."""
    return sorted({w.lower() for c in captions for w in _words(c)[0]})
