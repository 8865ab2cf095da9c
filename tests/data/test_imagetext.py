"""Image-text sources: several joined by `::` are one set, in order."""

from __future__ import annotations

import pytest

from finevl.data.imagetext import load_image_text
from finevl.errors import FinevlError


def test_sources_joined_by_double_colon_concatenate_in_order(world, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    image = sorted((world / "images").iterdir())[0]
    pairs.write_text(f'{{"image": "{image}", "text": "a red circle"}}\n', encoding="utf-8")
    alone = load_image_text(world, 32, split="train")
    mixed = load_image_text(f"{world}::{pairs}", 32, split="train")
    assert len(mixed) == len(alone) + 1
    assert mixed.images[: len(alone)].equal(alone.images)
    assert mixed.refs[-1] == ["a red circle"] and mixed.fine[-1] is None
    assert mixed.fine[: len(alone)] == alone.fine


def test_a_missing_source_in_a_mix_is_named(world, tmp_path):
    with pytest.raises(FinevlError, match="nope"):
        load_image_text(f"{world}::{tmp_path / 'nope'}", 32, split="train")
