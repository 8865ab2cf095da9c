"""The LLaVA-style model: the CLIP tower carried over exactly, chat prompts, batched
generation, save/load, and a clear error for an incomplete model directory."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from finevl.data.images import ImageCache
from finevl.errors import FinevlError
from finevl.models.clip import load_clip
from finevl.models.lvlm import load_lvlm


def test_open_clip_tower_becomes_the_same_hf_tower(tiny_clip, tiny_lvlm_dir, world):
    clip, lvlm = load_clip(tiny_clip), load_lvlm(tiny_lvlm_dir)
    images = ImageCache(world)
    pixels = clip.preprocess_batch([images("images/00000000.png"), images("images/00000001.png")])
    tower = lvlm.model.model.vision_tower
    with torch.no_grad():
        out = tower(pixel_values=pixels)
        tokens = tower.post_layernorm(out.last_hidden_state[:, 1:])
        pooled = F.normalize(out.pooler_output @ clip.inner.visual.proj, dim=-1)
        torch.testing.assert_close(tokens, clip.encode_image_tokens(pixels), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pooled, clip.encode_image(pixels), atol=1e-5, rtol=1e-4)
    # the processor feeds the tower what the CLIP's own preprocessing gives
    fed = lvlm.processor.image_processor(images=[images("images/00000000.png")], return_tensors="pt")
    torch.testing.assert_close(fed["pixel_values"], pixels[:1], atol=1e-4, rtol=1e-4)


def test_prompt_keeps_the_image_placeholder_per_feature(tiny_lvlm_dir, world):
    lvlm = load_lvlm(tiny_lvlm_dir)
    prompt = lvlm.prompt("What is the background?")
    assert prompt.startswith("USER: <image>") and prompt.endswith("ASSISTANT:")
    batch = lvlm.inputs([ImageCache(world)("images/00000000.png")], [prompt])
    image_id = lvlm.tokenizer.convert_tokens_to_ids("<image>")
    assert int((batch["input_ids"] == image_id).sum()) == (64 // 8) ** 2 + 1  # patches + CLS


def test_answer_labels_cover_the_answer_and_eos_only(tiny_lvlm_dir, world):
    lvlm = load_lvlm(tiny_lvlm_dir)
    im = ImageCache(world)("images/00000000.png")
    prompts = [lvlm.prompt("What is the background?"), lvlm.prompt("How many shapes are there?")]
    batch = lvlm.inputs([im, im], prompts, ["snow", "two red stars"], padding_side="right")
    labelled = [lvlm.tokenizer.decode(row[row != -100]) for row in batch["labels"]]
    assert labelled == ["snow </s>", "two red stars </s>"]


def test_batched_greedy_generation_equals_one_at_a_time(tiny_lvlm_dir, world):
    lvlm = load_lvlm(tiny_lvlm_dir)
    images = ImageCache(world)
    ims = [images("images/00000000.png"), images("images/00000001.png"), images("images/00000002.png")]
    qs = ["What is the background?", "Describe the image.", "How many shapes are there?"]
    together = lvlm.generate(ims, qs, max_new_tokens=6, batch_size=3)
    alone = [lvlm.generate([im], [q], max_new_tokens=6)[0] for im, q in zip(ims, qs, strict=True)]
    assert together == alone and all(together)


@pytest.mark.parametrize(
    "missing", ["config.json", "model.safetensors", "tokenizer.json", "processor_config.json"]
)
def test_incomplete_model_directory_is_one_clear_error(tiny_lvlm_dir, tmp_path, missing):
    broken = tmp_path / "m"
    shutil.copytree(tiny_lvlm_dir, broken)
    (broken / missing).unlink()
    with pytest.raises(FinevlError, match="incomplete model directory"):
        load_lvlm(broken)


def test_a_llava_next_checkpoint_directory_loads_and_answers(tiny_lvlm_dir, world, tmp_path):
    """The path a user's llava-hf/llava-v1.6-* takes: AutoModelForImageTextToText + its processor."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    tok = load_lvlm(tiny_lvlm_dir).tokenizer
    grid = [[32, 32], [32, 64], [64, 32], [64, 64]]
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    vision = CLIPVisionConfig(**small, image_size=32, patch_size=8)
    text = LlamaConfig(vocab_size=len(tok), **small, num_key_value_heads=2, max_position_embeddings=1024,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    image_id = tok.convert_tokens_to_ids("<image>")
    config = LlavaNextConfig(vision_config=vision, text_config=text, image_grid_pinpoints=grid,
                             image_token_index=image_id, vision_feature_layer=-1)  # fmt: skip
    images = LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                     image_grid_pinpoints=grid)  # fmt: skip
    processor = LlavaNextProcessor(image_processor=images, tokenizer=tok, patch_size=8, image_token="<image>",
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=tok.chat_template)  # fmt: skip
    LlavaNextForConditionalGeneration(config).save_pretrained(tmp_path / "next")
    processor.save_pretrained(tmp_path / "next")
    lvlm = load_lvlm(tmp_path / "next")
    assert type(lvlm.model).__name__ == "LlavaNextForConditionalGeneration"
    cache = ImageCache(world)
    ims = [cache("images/00000000.png"), cache("images/00000001.png")]
    qs = ["What is the background?", "How many shapes are there?"]
    together = lvlm.generate(ims, qs, max_new_tokens=4, batch_size=2)
    alone = [lvlm.generate([im], [q], max_new_tokens=4)[0] for im, q in zip(ims, qs, strict=True)]
    assert together == alone


def test_conv_tower_llava_reads_the_stage_cells_and_reloads(conv_clip, conv_lvlm_dir, world):
    clip, lvlm = load_clip(conv_clip).eval(), load_lvlm(conv_lvlm_dir)
    assert lvlm.model.config.vision_config.model_type == "finevl_cells"
    images = ImageCache(world)
    pics = [images("images/00000000.png"), images("images/00000001.png")]
    pixels = clip.preprocess_batch(pics)
    with torch.no_grad():
        out = lvlm.model.model.vision_tower(pixel_values=pixels)
        maps = clip.inner.visual.trunk.forward_intermediates(pixels, intermediates_only=True)
        # Osprey's 1/16 map: at 64 px 4 x 4 cells of 256 channels, row-major, exactly the CLIP's
        torch.testing.assert_close(out.last_hidden_state, maps[3].flatten(2).transpose(1, 2))
        torch.testing.assert_close(out.hidden_states[2], maps[2].flatten(2).transpose(1, 2))  # every stage
        features = lvlm.model.get_image_features(
            pixel_values=pixels, vision_feature_layer=3, vision_feature_select_strategy="full"
        ).pooler_output
    assert len(features) == 2 and features[0].shape == (16, lvlm.model.config.text_config.hidden_size)
    # the processor writes one image token per cell
    batch = lvlm.inputs(pics[:1], [lvlm.prompt("what is it?")])
    assert int((batch["input_ids"] == lvlm.processor.image_token_id).sum()) == 16
    # training the LLaVA with its tower frozen leaves the tower's batch-norm statistics alone
    tower = lvlm.model.model.vision_tower
    tower.requires_grad_(False)
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    lvlm.model.train()
    lvlm.loss(lvlm.inputs(pics, [lvlm.prompt("q")] * 2, ["a red star", "a blue circle"], "right"))
    assert all(torch.equal(before[k], v) for k, v in tower.state_dict().items())


def test_a_llava_needs_a_vit_or_stage_maps(tmp_path):
    from finevl.data.tokenizer import train_word_tokenizer
    from finevl.models.lvlm import CHAT_WORDS, build_lvlm

    tok = train_word_tokenizer(["a red star", CHAT_WORDS], tmp_path / "tok", 64)
    with pytest.raises(
        FinevlError, match="ViT CLIP or a conv tower with stage maps; this one has a ModifiedResNet"
    ):
        build_lvlm(load_clip("RN50"), tok)
    with pytest.raises(FinevlError, match="vision stage 7"):
        build_lvlm(load_clip("finevl-tiny-conv"), tok, vision_stage=7)


def test_a_finer_stage_gives_more_image_tokens(tmp_path):
    from finevl.data.tokenizer import train_word_tokenizer
    from finevl.models.lvlm import CHAT_WORDS, build_lvlm

    tok = train_word_tokenizer(["a red star", CHAT_WORDS], tmp_path / "tok", 64)
    lvlm = build_lvlm(load_clip("finevl-tiny-conv"), tok, vision_stage=2)  # the 1/8 map
    assert lvlm.model.config.vision_feature_layer == 2
    assert lvlm.model.config.vision_config.hidden_size == 128
    batch = lvlm.inputs([Image.new("RGB", (64, 64))], [lvlm.prompt("what is it?")])
    assert int((batch["input_ids"] == lvlm.processor.image_token_id).sum()) == 64
