"""The mask-aware extractor and the region model: pooling, boxes, placeholders, files,
batched generation, and bad masks as one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from finevl.errors import FinevlError
from finevl.models.region import (
    MASK_TOKEN,
    POS_TOKEN,
    REGION,
    RegionPrompt,
    boxes_of,
    load_region_model,
    mask_pool,
)


def _disc(side: int, cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_mask_pool_is_the_mean_inside_the_mask():
    feats = torch.randn(1, 5, 16, 16)
    mask = torch.from_numpy(_disc(16, 6, 9, 4))[None]
    expected = feats[0][:, mask[0]].mean(1)
    assert torch.allclose(mask_pool(feats, mask)[0], expected, atol=1e-5)


def test_mask_pool_resizes_then_binarises_and_survives_a_vanishing_mask():
    feats = torch.randn(1, 3, 4, 4)
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[0, 0:16, 0:16] = True  # exactly the top-left cell at stride 16
    assert torch.allclose(mask_pool(feats, mask)[0], feats[0, :, 0, 0], atol=1e-5)
    empty = torch.zeros(1, 64, 64, dtype=torch.bool)
    assert torch.equal(mask_pool(feats, empty), torch.zeros(1, 3))


def test_boxes_of_fills_the_bounding_box():
    mask = torch.from_numpy(_disc(32, 10, 20, 5))[None]
    box = boxes_of(mask)[0]
    rows, cols = np.nonzero(mask[0].numpy())
    assert box.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1) and box[mask[0]].all()


def _prompt(side: int, masks: list[np.ndarray], question: str = f"What is in {REGION}?") -> RegionPrompt:
    return RegionPrompt(Image.new("RGB", (side, side), (200, 30, 30)), masks, question)


def test_region_placeholders_take_the_extractor_tokens(region_model_dir):
    model = load_region_model(region_model_dir)
    masks = [_disc(64, 20, 20, 8), _disc(64, 44, 40, 10)]
    batch = model.batch([_prompt(64, masks, f"Compare {REGION} and {REGION}.")])
    embeds = model.embed(batch)
    maps = model.stage_maps(batch["pixel_values"])
    tokens = model.extractor(maps, batch["masks"][0], torch.zeros(2, dtype=torch.long))
    ids = batch["input_ids"][0]
    assert torch.allclose(embeds[0, ids == model.ids[MASK_TOKEN]], tokens[:, 0], atol=1e-6)
    assert torch.allclose(embeds[0, ids == model.ids[POS_TOKEN]], tokens[:, 1], atol=1e-6)
    assert int((ids == model.ids["<image>"]).sum()) == model.image_tokens == (128 // 16) ** 2


def test_a_batch_keeps_each_row_its_own_regions_and_any_image_size(region_model_dir):
    model = load_region_model(region_model_dir)
    rows = [
        _prompt(64, [_disc(64, 20, 20, 8)]),
        _prompt(96, [_disc(96, 60, 30, 12), _disc(96, 30, 70, 9)], f"Compare {REGION} and {REGION}."),
        _prompt(80, [_disc(80, 40, 40, 20)]),
    ]
    together = model.embed(model.batch(rows, padding_side="right"))
    for k, row in enumerate(rows):
        alone = model.embed(model.batch([row], padding_side="right"))[0]
        assert torch.allclose(together[k, : alone.shape[0]], alone, atol=1e-5)


def test_answer_labels_cover_only_the_answer_and_eos(region_model_dir):
    model = load_region_model(region_model_dir)
    rows = [_prompt(64, [_disc(64, 20, 20, 8)]), _prompt(64, [_disc(64, 30, 30, 8)], f"Which {REGION} here?")]
    batch = model.batch(rows, ["a red star", "circle"], padding_side="right")
    for k, answer in enumerate(["a red star", "circle"]):
        labelled = batch["labels"][k][batch["labels"][k] != -100]
        assert model.tokenizer.decode(labelled).split() == [*answer.split(), "</s>"]
    with pytest.raises(ValueError, match="right padding"):
        model.batch(rows, ["a", "b"], padding_side="left")


def test_box_input_and_spatial_token_switches_change_the_tokens(region_model_dir):
    model = load_region_model(region_model_dir)
    batch = model.batch([_prompt(64, [_disc(64, 30, 30, 12)])])
    maps = model.stage_maps(batch["pixel_values"])
    owner = torch.zeros(1, dtype=torch.long)
    with_mask = model.extractor(maps, batch["masks"][0], owner)
    model.extractor.config.region_input = "box"
    with_box = model.extractor(maps, batch["masks"][0], owner)
    assert not torch.allclose(with_mask, with_box)
    model.extractor.config.spatial_token = False
    assert model.extractor(maps, batch["masks"][0], owner).shape[1] == 1


def test_stage_trainable_parts_leave_the_tower_frozen(region_model_dir):
    model = load_region_model(region_model_dir)
    model.set_trainable(["extractor"])
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"extractor"}
    batch = model.batch([_prompt(64, [_disc(64, 30, 30, 12)])], ["a red circle"], padding_side="right")
    model.loss(batch).backward()
    assert all(p.grad is None for p in model.clip.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.extractor.parameters())


def test_save_and_load_give_the_same_model(region_model_dir, tmp_path):
    model = load_region_model(region_model_dir)
    torch.nn.init.normal_(model.extractor.mask_mlp[0].weight)
    again = load_region_model(model.save(tmp_path / "copy"))
    batch = model.batch([_prompt(64, [_disc(64, 30, 30, 12)])], ["a red circle"], padding_side="right")
    assert torch.allclose(model.loss(batch), again.loss(batch), atol=1e-5)


def test_batched_generation_equals_one_at_a_time(region_model_dir):
    model = load_region_model(region_model_dir)
    examples = [
        _prompt(64, [_disc(64, 20 + 8 * k, 30, 6 + k)], f"What is in {REGION}? Be {'brief ' * k}")
        for k in range(3)
    ]
    together = model.generate(examples, max_new_tokens=6, batch_size=3)
    alone = [model.generate([e], max_new_tokens=6)[0] for e in examples]
    assert together == alone


@pytest.mark.parametrize(
    ("masks", "question", "message"),
    [
        ([np.zeros((64, 64), bool)], f"What is {REGION}?", "mask 1 is empty"),
        ([np.ones((64, 64), bool)], f"What is {REGION}?", "covers the whole image"),
        ([_disc(32, 10, 10, 4)], f"What is {REGION}?", "mask 1 is 32x32, the image 64x64"),
        ([_disc(64, 10, 10, 4)], f"Compare {REGION} and {REGION}.", "2 <mask><pos> regions but 1 masks"),
        ([_disc(64, 10, 10, 4), _disc(64, 40, 40, 4)], f"What is {REGION}?", "1 <mask><pos> regions but 2"),
        ([_disc(64, 10, 10, 4)], f"What is {MASK_TOKEN}?", "must come in pairs"),
        ([_disc(64, 10, 10, 4)], f"<image>\nWhat is {REGION}?", "must not hold <image>"),
    ],
)
def test_bad_masks_are_one_clear_error(region_model_dir, masks, question, message):
    model = load_region_model(region_model_dir)
    with pytest.raises(FinevlError, match=message):
        model.batch([_prompt(64, masks, question)])


def test_a_vit_clip_is_refused(tmp_path):
    from finevl.data.tokenizer import train_word_tokenizer
    from finevl.models.clip import load_clip
    from finevl.models.region import build_region_model

    tok = train_word_tokenizer(["a red star"], tmp_path / "tok", 64)
    with pytest.raises(FinevlError, match="needs a convolutional timm tower"):
        build_region_model(load_clip("finevl-tiny-vit"), tok)


@pytest.mark.parametrize(
    ("preset", "level", "side"),
    [("finevl-tiny-convnext", 2, 8), ("finevl-tiny-conv", 3, 8), ("finevl-tiny-conv-ctx-128", 2, 8)],
)
def test_image_tokens_come_from_the_stage_at_one_sixteenth(preset, level, side, tmp_path):
    """Osprey's res4: a ConvNeXt's third stage, the conv tower's fourth (it halves per stage),
    the 128 px tower's third (behind its 2x pooling stem)."""
    from finevl.data.tokenizer import train_word_tokenizer
    from finevl.models.clip import load_clip
    from finevl.models.region import IMAGE_TOKEN, build_region_model

    tok = train_word_tokenizer(["a red star"], tmp_path / "tok", 64)
    model = build_region_model(load_clip(preset), tok)
    assert model.config.image_level == level and model.image_tokens == side * side
    maps = model.stage_maps(model.pixels([Image.new("RGB", (40, 30))]))
    assert maps[level].shape[-2:] == (side, side)
    assert model.prompt("what is this?").count(IMAGE_TOKEN) == side * side


def test_an_incomplete_or_damaged_folder_is_one_clear_error(region_model_dir, tmp_path):
    import shutil

    (tmp_path / "m").mkdir()
    with pytest.raises(FinevlError, match="not a region model folder"):
        load_region_model(tmp_path / "m")
    damaged = shutil.copytree(region_model_dir, tmp_path / "d")
    (damaged / "region_config.json").write_text('{"image_size": 128, "colour": "red"}')
    with pytest.raises(FinevlError, match="cannot load the region model"):
        load_region_model(damaged)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("region_input", ["mask", "box"])
def test_the_region_model_answers_on_the_gpu_in_bfloat16(region_model_dir, region_input):
    model = load_region_model(region_model_dir, device="cuda", dtype=torch.bfloat16)
    model.extractor.config.region_input = region_input
    answer = model.generate([_prompt(64, [_disc(64, 30, 30, 12)])], max_new_tokens=2)
    assert len(answer) == 1 and isinstance(answer[0], str)
