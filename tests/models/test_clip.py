"""One CLIP interface over open_clip and Hugging Face: round trips, tokenizers, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from finevl.errors import FinevlError
from finevl.models.clip import clip_bpe_tokenizer_parts, load_clip, presets

PRESETS = ["finevl-tiny-vit", "finevl-tiny-convnext", "hf-tiny-vit"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = {}
    for name in PRESETS:
        torch.manual_seed(0)
        clip = load_clip(name)
        out[name] = (clip, clip.save(tmp_path_factory.mktemp(name) / "ckpt"))
    return out


@pytest.mark.parametrize("name", PRESETS)
def test_save_load_round_trip_is_exact(saved, name):
    clip, path = saved[name]
    again = load_clip(path)
    assert again.family == clip.family and again.image_size == clip.image_size == 64
    image = Image.new("RGB", (80, 70), (10, 200, 30))
    assert torch.equal(clip.preprocess(image), again.preprocess(image))
    texts = clip.tokenize(["a small red star left of a blue circle", "snow"])
    pixels = torch.stack([clip.preprocess(image)] * 2)
    with torch.no_grad():
        assert torch.allclose(clip.encode_text(texts), again.encode_text(texts), atol=1e-6)
        assert torch.allclose(clip.encode_image(pixels), again.encode_image(pixels), atol=1e-6)
    assert clip.logit_scale.exp().item() == pytest.approx(1 / 0.07, rel=1e-4)
    weights = {p.name for p in path.iterdir()}
    assert any(w.endswith(".safetensors") for w in weights) and not any(
        w.endswith((".bin", ".pt")) for w in weights
    )


def test_hf_tokenizer_equals_open_clip_bpe():
    import open_clip

    hf = load_clip("hf-tiny-vit")._tokenizer
    ref = open_clip.get_tokenizer("ViT-B-32")
    texts = [
        "A small red striped star, left of the blue circle.",
        'It says "2024".',
        "naïve café",
        "word " * 90,
    ]
    ours = hf(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    theirs = ref(texts)
    for ids, mask, want in zip(ours["input_ids"], ours["attention_mask"], theirs, strict=True):
        assert torch.equal(ids[mask.bool()], want[: int(mask.sum())])
    vocab, _ = clip_bpe_tokenizer_parts()
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407


def test_hf_token_ids_are_the_wrappers_whatever_it_was_last_asked():
    from finevl.models.clip import _hf_token_ids

    tok = load_clip("hf-tiny-vit")._tokenizer
    texts = ["A small red striped star, left of the blue circle.", "naïve café  x", "word " * 90]
    want = tok(texts, add_special_tokens=True)["input_ids"]
    assert _hf_token_ids(tok, texts) == want and len(want[2]) > 77  # untruncated
    tok(texts, padding="max_length", truncation=True, max_length=77)  # may leave settings behind
    assert _hf_token_ids(tok, texts) == want


def test_convnext_tower_exposes_four_stage_maps():
    clip = load_clip("finevl-tiny-convnext")
    maps = clip.inner.visual.trunk.forward_intermediates(torch.zeros(1, 3, 64, 64), intermediates_only=True)
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2] and len({m.shape[1] for m in maps}) == 4


def test_truncation_is_counted_and_empty_input_refused():
    clip = load_clip("finevl-tiny-vit")
    batch = clip.tokenize(["short", "word " * 100, "also " * 80])
    assert batch.truncated == 2 and batch.ids.shape == (3, 77)
    with pytest.raises(FinevlError, match="empty caption list"):
        clip.tokenize([])
    with pytest.raises(FinevlError, match="caption 1 is empty"):
        clip.tokenize(["fine", "  "])


def test_open_clip_train_checkpoint_and_safetensors_weights_load(saved, tmp_path):
    clip, path = saved["finevl-tiny-vit"]
    state = {f"module.{k}": v for k, v in clip.inner.state_dict().items()}
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "epoch_1.pt")
    from_pt = load_clip("finevl-tiny-vit", weights=tmp_path / "epoch_1.pt")
    from_st = load_clip("finevl-tiny-vit", weights=path / "open_clip_model.safetensors")
    for other in (from_pt, from_st):
        assert all(
            torch.equal(a, b)
            for a, b in zip(clip.state_dict().values(), other.state_dict().values(), strict=True)
        )


def test_bad_model_directories_are_one_clear_error(saved, tmp_path):
    with pytest.raises(FinevlError, match="model directory not found"):
        load_clip(tmp_path / "nope")
    with pytest.raises(FinevlError, match="unknown model"):
        load_clip("no-such-architecture")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinevlError, match="not a CLIP checkpoint"):
        load_clip(tmp_path / "empty")
    for name, weights in (
        ("finevl-tiny-vit", "open_clip_model.safetensors"),
        ("hf-tiny-vit", "model.safetensors"),
    ):
        import shutil

        broken = tmp_path / f"{name}-incomplete"
        shutil.copytree(saved[name][1], broken)
        (broken / weights).unlink()
        with pytest.raises(FinevlError, match="incomplete"):
            load_clip(broken)
        corrupt = tmp_path / f"{name}-corrupt"
        shutil.copytree(saved[name][1], corrupt)
        (corrupt / weights).write_bytes(b"\x00\x01 definitely not safetensors")
        with pytest.raises(FinevlError, match="not a readable safetensors"):
            load_clip(corrupt)
    with pytest.raises(FinevlError, match="do not fit"):
        load_clip("finevl-tiny-convnext", weights=saved["finevl-tiny-vit"][1] / "open_clip_model.safetensors")


def test_presets_are_listed():
    assert set(PRESETS) <= set(presets())


@pytest.mark.parametrize("name", PRESETS)
def test_trimmed_text_encoding_equals_the_libraries_own(saved, name):
    clip, _ = saved[name]
    clip.eval()
    texts = ["a red star", "a small blue striped circle left of a green box on snow"]
    ours = clip.encode_text(clip.tokenize(texts), normalize=False)
    assert clip.tokenize(texts).ids.shape[1] < clip.context_length  # trimmed
    texts.append("star " * 100)  # and cut to the context, as the library cuts
    ours = clip.encode_text(clip.tokenize(texts), normalize=False)
    with torch.no_grad():
        if clip.family == "open_clip":
            theirs = clip.inner.encode_text(clip._tokenizer(texts, clip.context_length))
        else:
            enc = clip._tokenizer(
                texts,
                padding="max_length",
                truncation=True,
                max_length=clip.context_length,
                return_tensors="pt",
            )
            theirs = clip.inner.get_text_features(**enc)
            theirs = getattr(theirs, "pooler_output", theirs)
    assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("name", PRESETS)
def test_length_sorted_chunks_give_each_text_its_own_embedding(saved, name):
    """embed_texts sorts by length and cuts each chunk to its longest text: the values are
    those of each text encoded alone, in the caller's order."""
    clip, _ = saved[name]
    texts = [
        "a red star",
        "snow",
        "two small blue striped circles left of a green box on grass",
        "a big square",
        'the sign says "open!".',  # "!" is open_clip's token 0, which is also its padding
        'a star and the sign !"" here',
    ]
    batched = clip.embed_texts(texts * 3, batch_size=2)
    with torch.no_grad():
        alone = torch.cat([clip.encode_text(clip.tokenize([t])) for t in texts * 3])
    assert torch.allclose(batched, alone, atol=1e-5)


@pytest.mark.parametrize("name", PRESETS)
def test_image_tokens_are_per_position_features(saved, name):
    clip, _ = saved[name]
    tokens = clip.eval().embed_pixels(torch.zeros(2, 3, 64, 64, dtype=torch.uint8), tokens=True)
    assert tokens.ndim == 3 and tokens.shape[0] == 2 and tokens.shape[1] >= 4


@pytest.mark.parametrize("name", ["finevl-tiny-conv", "finevl-tiny-convnext", "finevl-tiny-conv-ctx"])
def test_128_px_presets_are_the_same_towers_at_128(name):
    small, large = load_clip(name), load_clip(f"{name}-128")
    assert (small.image_size, large.image_size) == (64, 128)
    assert [p.shape for p in small.parameters()] == [p.shape for p in large.parameters()]
    with torch.no_grad():
        out = large.encode_image(torch.zeros(1, 3, 128, 128))
    assert out.shape == (1, 128)


@pytest.mark.parametrize("name", PRESETS)
def test_inference_embeddings_equal_the_full_forward(saved, name):
    """embed_pixels (HF: the last layer for the class token alone) gives encode_image's values."""
    clip, _ = saved[name]
    images = torch.randint(
        0, 256, (5, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        full = clip.eval().encode_image(clip.normalize_pixels(images))
    assert torch.allclose(clip.embed_pixels(images, batch_size=2), full, atol=1e-5)


@pytest.mark.parametrize("name", PRESETS)
def test_images_at_the_model_size_skip_the_processor_with_its_values(saved, name):
    from PIL import Image

    clip, _ = saved[name]
    rng = np.random.default_rng(0)
    at_size = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]
    assert torch.allclose(clip.preprocess_batch(at_size), clip._process(at_size), atol=1e-6)
    larger = [im.resize((96, 80)) for im in at_size]  # these need the resize and crop
    assert torch.equal(clip.preprocess_batch(larger), clip._process(larger))
