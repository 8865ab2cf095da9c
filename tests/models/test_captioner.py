"""The captioner: HF-style save/load, decoding modes, the KV cache, bad checkpoints."""

from __future__ import annotations

import pytest
import torch

from finevl.data.tokenizer import train_word_tokenizer
from finevl.errors import FinevlError
from finevl.models.captioner import caption_mask, load_captioner, new_captioner

CORPUS = ["a red star on snow.", "a blue circle left of a green box.", "two shapes on grass."]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    tok = train_word_tokenizer(CORPUS, tmp_path_factory.mktemp("tok"))
    return new_captioner(tok, vision_dim=16, clip_model="x", d_model=32, layers=2, heads=2)


def test_save_load_round_trip_is_exact(bundle, tmp_path):
    feats = torch.randn(2, 5, 16)
    ids, _ = bundle.encode(CORPUS[:2], 20)
    path = bundle.save(tmp_path / "cap")
    again = load_captioner(path)
    assert again.model.config.clip_model == "x" and len(again.tokenizer) == len(bundle.tokenizer)
    with torch.no_grad():
        assert torch.equal(again.model(feats, ids).logits, bundle.model.eval()(feats, ids).logits)


def test_encode_builds_bos_eos_and_ignores_padding(bundle):
    ids, labels = bundle.encode(["a red star.", "a box"], 20)
    cfg = bundle.model.config
    assert ids[:, 0].eq(cfg.bos_token_id).all()
    assert ids[1].tolist().count(cfg.eos_token_id) == 1 and ids[1, -1] == cfg.pad_token_id
    assert (labels[ids == cfg.pad_token_id] == -100).all() and (labels[:, 0] == -100).all()


@pytest.mark.parametrize("decoding,k", [("greedy", 1), ("beam", 2), ("sample", 3)])
def test_decoding_modes_return_k_sequences_per_image(bundle, decoding, k):
    out = bundle.model.eval().generate_ids(
        torch.randn(2, 5, 16), decoding, max_new_tokens=6, num_return_sequences=k
    )
    assert out.shape[0] == 2 * k and out.shape[1] <= 7
    assert out[:, 0].eq(bundle.model.config.bos_token_id).all()


def test_kv_cache_gives_the_same_greedy_captions(bundle):
    feats = torch.randn(4, 5, 16)
    model = bundle.model.eval()
    with_cache = model.generate_ids(feats, max_new_tokens=12, min_new_tokens=12, use_cache=True)
    without = model.generate_ids(feats, max_new_tokens=12, min_new_tokens=12, use_cache=False)
    assert torch.equal(with_cache, without)


def test_caption_mask_stops_after_the_first_eos():
    ids = torch.tensor([[2, 5, 3, 0, 0], [2, 5, 6, 7, 8]])
    assert caption_mask(ids, 3).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_too_many_new_tokens_are_refused(bundle):
    with pytest.raises(FinevlError, match="max_new_tokens"):
        bundle.model.generate_ids(torch.randn(1, 5, 16), max_new_tokens=65)


def test_bad_checkpoints_are_one_clear_error(bundle, tmp_path):
    with pytest.raises(FinevlError, match="not a captioner"):
        load_captioner(tmp_path / "missing")
    path = bundle.save(tmp_path / "cap")
    (path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(FinevlError, match="not a readable safetensors"):
        load_captioner(path)
