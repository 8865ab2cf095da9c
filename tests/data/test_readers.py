"""Readers of every format: valid files load, bad ones fail with the file and record named."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from finevl.data.coco import CocoCaptions, CocoInstances, decode_segmentation, encode_masks
from finevl.data.formats import image_folder, read_finecap, read_pairs
from finevl.data.jsonio import read_json
from finevl.data.tokenizer import check_caption, corpus_texts, load_tokenizer, train_word_tokenizer
from finevl.errors import FinevlError


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text('{"images": [\n  {"id": 1,, }\n]}')
    with pytest.raises(FinevlError, match=r"captions.json: line 2: malformed JSON \(column 12"):
        CocoCaptions(path)


def test_records_are_validated_with_their_index(world_copy):
    data = read_json(world_copy / "captions.json")
    data["annotations"][7]["caption"] = "   "
    (world_copy / "captions.json").write_text(json.dumps(data))
    with pytest.raises(FinevlError, match=r"annotations\[7\] \(id \d+\): empty caption"):
        CocoCaptions(world_copy / "captions.json")
    data["annotations"][7] = {"id": 1, "image_id": "x", "caption": "a"}
    (world_copy / "captions.json").write_text(json.dumps(data))
    with pytest.raises(FinevlError, match=r"annotations\[7\]: image_id"):
        CocoCaptions(world_copy / "captions.json")


def test_mask_of_the_wrong_size_is_named(world_copy):
    data = read_json(world_copy / "instances.json")
    ann = data["annotations"][3]
    import numpy as np

    ann["segmentation"] = encode_masks([np.ones((32, 32), bool)])[0]
    (world_copy / "instances.json").write_text(json.dumps(data))
    inst = CocoInstances(world_copy / "instances.json")
    bad = next(a for a in inst.annotations[ann["image_id"]] if a.id == ann["id"])
    with pytest.raises(FinevlError, match=rf"annotation {ann['id']} .*mask is 32x32 but its image is 64x64"):
        inst.mask(bad)


def test_polygon_and_rle_segmentations_decode():
    poly = [[2.0, 2.0, 10.0, 2.0, 10.0, 10.0, 2.0, 10.0]]
    assert decode_segmentation(poly, 16, 16, "x").sum() > 40
    import numpy as np

    m = np.zeros((16, 16), bool)
    m[3:7, 4:9] = True
    assert (decode_segmentation(encode_masks([m])[0], 16, 16, "x") == m).all()


def test_pairs_folders_and_finecap(tmp_path, world):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "x.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "top.jpg")
    (tmp_path / "notes.txt").write_text("hi")
    assert [(p.name, label) for p, label in image_folder(tmp_path)] == [("x.png", "a"), ("top.jpg", "")]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"image": "a/x.png", "text": "a red star"}\n\n{"image": "top.jpg", "caption": "snow"}\n'
    )
    got = read_pairs(pairs)
    assert got[0].image == str(tmp_path / "a" / "x.png") and got[1].text == "snow"
    pairs.write_text('{"image": "a/x.png", "text": ""}\n')
    with pytest.raises(FinevlError, match="pairs.jsonl: line 1: text"):
        read_pairs(pairs)
    pairs.write_text('{"image": "a/x.png", "text": "ok"}\n{oops\n')
    with pytest.raises(FinevlError, match="line 2: malformed JSON"):
        read_pairs(pairs)
    assert len(read_finecap(world / "finecap.json")) == 60


def test_word_tokenizer_trains_saves_loads_and_checks_lengths(world, tmp_path):
    texts = corpus_texts(world)
    tok = train_word_tokenizer(texts, tmp_path / "tok", max_length=40)
    again = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert isinstance(again, PreTrainedTokenizerFast)
    assert load_tokenizer(tmp_path / "tok").get_vocab() == tok.get_vocab()
    unk = tok.unk_token_id
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert unk not in ids
    assert tok.decode(tok("A red star on snow.")["input_ids"]) == "a red star on snow."
    assert tok.convert_tokens_to_ids("<image>") != unk
    with pytest.raises(FinevlError, match="where: empty caption"):
        check_caption(tok, " ", "where")
    with pytest.raises(FinevlError, match="over the tokenizer's limit of 40"):
        check_caption(tok, "red star " * 30, "where")
    with pytest.raises(FinevlError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
