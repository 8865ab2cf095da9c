"""Compositional hard negatives: one edit each, the article mended, false of the image when
checked by the world's parser, and a vocabulary file that reads back."""

from __future__ import annotations

import json
import random

import pytest

from finevl.data.formats import read_finecap
from finevl.data.hard_negatives import HardNegatives, NegativeVocab, negative_vocab
from finevl.errors import FinevlError
from finevl.language.grammar import caption_is_false, caption_is_true


def _changed_words(a: str, b: str) -> list[tuple[str, str]]:
    return [(x, y) for x, y in zip(a.split(), b.split(), strict=True) if x != y]


def test_replace_changes_one_attribute_word_and_mends_the_article():
    vocab = NegativeVocab({"color": {"red": ["red"], "orange": ["orange"]}}, {})
    assert HardNegatives(vocab, k=1)("A red star.", random.Random(0)) == ["An orange star."]
    assert HardNegatives(vocab, k=1)("an orange disc", random.Random(0)) == ["a red disc"]


def test_swap_trades_two_values_and_relation_is_inverted_in_its_register():
    vocab = NegativeVocab({"shape": {"star": ["star"], "heart": ["heart"]}}, {})
    negs = HardNegatives(vocab, k=3)("a star and a heart", random.Random(1))
    assert "a heart and a star" in negs
    rel = negative_vocab()
    only_relation = HardNegatives(NegativeVocab({}, rel.inverse, rel.relation_words), k=1)
    assert only_relation("Something to the left of it.", random.Random(0)) == [
        "Something to the right of it."
    ]
    assert only_relation("X partly hidden by Y", random.Random(0)) == ["X partly covering Y"]


def test_nothing_editable_gives_no_negative():
    assert HardNegatives(negative_vocab(), k=4)("Some shapes.", random.Random(0)) == []


def test_world_negatives_are_false_true_captions_edited_once(world):
    make = HardNegatives(negative_vocab(), k=4, check=caption_is_false)
    rng, n = random.Random(0), 0
    for record in read_finecap(world / "finecap.json"):
        assert caption_is_true(record.caption, record.scene)
        for negative in make(record.caption, rng, record.scene):
            n += 1
            assert caption_is_false(negative, record.scene), negative
            changed = (
                _changed_words(record.caption, negative)
                if len(negative.split()) == len(record.caption.split())
                else [("multi-word", "edit")]
            )
            assert 1 <= len(changed) <= 3, (record.caption, negative)  # one word (two for a swap, article)
    assert n > 100


def test_vocab_file_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(negative_vocab().to_json()))
    again = NegativeVocab.from_file(path)
    assert again == negative_vocab()
    path.write_text(json.dumps({"attributes": {"color": ["red"]}}))
    with pytest.raises(FinevlError, match="not a negative vocabulary"):
        NegativeVocab.from_file(path)
    path.write_text(json.dumps({"attributes": {"color": {"red": ["red"]}}}))
    with pytest.raises(FinevlError, match="no attribute with two values"):
        NegativeVocab.from_file(path)
