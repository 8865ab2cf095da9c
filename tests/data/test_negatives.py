"""Each negative generator does what its name says (seed 000's five corruptions)."""

from __future__ import annotations

import random

import pytest

from finevl.data.negatives import KINDS, caption_vocabulary, make_negative

CAPTIONS = [
    "A small red striped star left of a blue circle on snow.",
    "Two shapes on grass",
    "a box.",
    'A large green heart above a yellow dotted cross, and the word "SEVEN".',
]
VOCAB = caption_vocabulary(CAPTIONS) + ["zebra"]


def _words(text: str) -> list[str]:
    return text.removesuffix(".").split()


def _cases(kind: str):
    for seed in range(60):
        caption = CAPTIONS[seed % len(CAPTIONS)]
        neg, got = make_negative(caption, random.Random(seed), VOCAB, kind)
        yield _words(caption), _words(neg), got


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(w in it for w in short)


def test_repeat_inserts_a_copy_of_an_ngram_right_after_it():
    for words, neg, kind in _cases("repeat"):
        assert kind == "repeat" and 1 <= len(neg) - len(words) <= 9
        found = any(
            neg[: i + n] == words[: i + n]
            and (len(neg) - len(words)) % n == 0
            and neg[i + n : i + n + len(neg) - len(words)]
            == words[i : i + n] * ((len(neg) - len(words)) // n)
            and neg[i + n + len(neg) - len(words) :] == words[i + n :]
            for n in (1, 2, 3)
            for i in range(len(words) - n + 1)
        )
        assert found, (words, neg)


def test_remove_deletes_one_contiguous_ngram():
    for words, neg, kind in _cases("remove"):
        if len(words) < 2:
            assert kind == "insert"  # nothing may be removed from a one-word caption
            continue
        n = len(words) - len(neg)
        assert 1 <= n <= 3 and neg
        assert any(words[:i] + words[i + n :] == neg for i in range(len(words) - n + 1))


def test_insert_adds_one_to_three_vocabulary_words():
    for words, neg, _ in _cases("insert"):
        assert 1 <= len(neg) - len(words) <= 3 and _is_subsequence(words, neg)
        assert all(w in VOCAB or w in words for w in neg)


def test_swap_replaces_one_to_three_tokens_by_vocabulary_words():
    for words, neg, _ in _cases("swap"):
        changed = [k for k, (a, b) in enumerate(zip(words, neg, strict=True)) if a != b]
        assert 1 <= len(changed) <= 3
        assert all(neg[k] in VOCAB for k in changed)


def test_shuffle_permutes_all_tokens():
    for words, neg, _ in _cases("shuffle"):
        assert sorted(words) == sorted(neg) and (neg != words or len(set(words)) == 1)


def test_kinds_are_drawn_uniformly():
    rng = random.Random(0)
    kinds = [make_negative(CAPTIONS[0], rng, VOCAB)[1] for _ in range(2500)]
    for kind in KINDS:
        assert 0.16 < kinds.count(kind) / len(kinds) < 0.24


def test_empty_caption_is_refused():
    with pytest.raises(ValueError):
        make_negative("  ", random.Random(0), VOCAB)
