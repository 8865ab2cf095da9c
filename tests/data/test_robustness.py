"""Malformed inputs of every kind end in one FinevlError, never a raw exception."""

from __future__ import annotations

import json
import shutil

import pytest

from finevl.data.check import check_dataset
from finevl.data.coco import decode_segmentation
from finevl.data.images import ImageLoader
from finevl.data.jsonio import read_json
from finevl.data.shards import iter_shards
from finevl.data.tokenizer import corpus_texts, train_word_tokenizer
from finevl.errors import FinevlError


@pytest.mark.parametrize(
    "seg",
    [
        [[1.0, 2.0, 3.0]],
        {"size": [8, 8], "counts": [1, 2, 3]},
        {"size": [8, 8], "counts": "é!"},
        {"counts": "x"},
    ],
    ids=["short-polygon", "counts-sum", "non-ascii", "no-size"],
)
def test_malformed_segmentations(seg):
    with pytest.raises(FinevlError, match="ann 7"):
        decode_segmentation(seg, 8, 8, "ann 7")


def test_check_counts_a_missing_image_when_skipping(world_copy):
    victim = sorted((world_copy / "images").iterdir())[5]
    victim.unlink()
    report = check_dataset(world_copy, ImageLoader("skip"))
    assert report["skipped_images"] == 1 and report["images"] == 59 and victim.name in report["skipped"][0]


def test_check_catches_wrong_area_box_and_splits(world_copy):
    inst = world_copy / "instances.json"
    data = read_json(inst)
    data["annotations"][2]["area"] += 50
    inst.write_text(json.dumps(data))
    with pytest.raises(FinevlError, match=r"annotation \d+ .*area"):
        check_dataset(world_copy)
    data["annotations"][2]["area"] -= 50
    data["annotations"][2]["bbox"][0] += 5
    inst.write_text(json.dumps(data))
    with pytest.raises(FinevlError, match="bbox"):
        check_dataset(world_copy)
    data["annotations"][2]["bbox"][0] -= 5
    inst.write_text(json.dumps(data))
    (world_copy / "splits.json").write_text(json.dumps({"train": [0, 999]}))
    with pytest.raises(FinevlError, match="unknown image id 999"):
        check_dataset(world_copy)


def test_truncated_shard_is_named(world, tmp_path):
    src = world / "shards" / "val-000000.tar"
    shutil.copy(src, tmp_path / "a.tar")
    (tmp_path / "b.tar").write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    with pytest.raises(FinevlError, match="b.tar: damaged shard"):
        list(iter_shards(tmp_path))


def test_tokenizer_output_must_be_a_folder(world, tmp_path):
    (tmp_path / "file").write_text("x")
    texts = corpus_texts(world)
    with pytest.raises(FinevlError, match="not a folder"):
        train_word_tokenizer(texts, tmp_path / "file")
    with pytest.raises(FinevlError, match="at least 8"):
        train_word_tokenizer(texts, tmp_path / "tok", max_length=0)
