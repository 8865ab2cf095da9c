"""The conv tower preset, the attribute trainer (tower or linear probe) and LiT."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from finevl.data.hard_negatives import negative_vocab
from finevl.errors import FinevlError
from finevl.models.clip import load_clip
from finevl.train.config import ClipTrainConfig, TowerTrainConfig
from finevl.train.contrastive import train_clip
from finevl.train.tower import AttributeProbe, train_tower

WEIGHTS = "checkpoint/model/open_clip_model.safetensors"


def test_conv_tower_is_an_open_clip_preset_with_four_stage_maps(tmp_path):
    torch.manual_seed(0)
    clip = load_clip("finevl-tiny-conv")
    saved = clip.save(tmp_path / "ckpt")
    config = json.loads((saved / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["timm_model_name"] == "finevl_convstages_s"
    again = load_clip(saved).eval()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(clip.eval().encode_image(pixels), again.encode_image(pixels), atol=1e-6)
    maps = again.inner.visual.trunk.forward_intermediates(pixels, intermediates_only=True)
    assert [m.shape[1:] for m in maps] == [(32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4)]
    info = again.inner.visual.trunk.feature_info
    assert [f["reduction"] for f in info] == [2, 4, 8, 16]


def test_probe_loss_is_cross_entropy_per_attribute_over_present_values():
    probe = AttributeProbe(load_clip("finevl-tiny-conv"), {"shape": ["a", "b"], "color": ["x", "y", "z"]})
    logits = torch.tensor([[2.0, 0.0, 0.0, 1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0]])  # one shape; two colours present
    want = torch.nn.functional.cross_entropy(logits[:, :2], torch.tensor([0])) + (
        -0.5 * torch.log_softmax(logits[:, 2:], -1)[0, 1:].sum()
    )
    assert probe.loss(logits, targets).item() == pytest.approx(want.item(), rel=1e-6)


def _tower_cfg(world, out, **kw) -> TowerTrainConfig:
    base = dict(
        data=str(world), out=str(out), model="finevl-tiny-conv", steps=3, batch_size=8, warmup_steps=1
    )
    return TowerTrainConfig(**{**base, **kw})


def test_linear_probe_leaves_the_tower_and_training_changes_it(world, tmp_path):
    start = load_clip("finevl-tiny-conv").save(tmp_path / "start")
    before = load_file(str(start / "open_clip_model.safetensors"))
    for freeze in (True, False):
        out = tmp_path / f"freeze-{freeze}"
        summary = train_tower(_tower_cfg(world, out, model=str(start), freeze=freeze, eval_split="val"))
        assert set(summary["metrics"]) == {"shape", "color", "size", "pattern", "background"}
        assert 0.0 <= summary["metrics"]["background"]["acc1"] <= 1.0
        assert all(m["acc1"] is None or 0.0 <= m["acc1"] <= 1.0 for m in summary["metrics"].values())
        after = load_file(str(out / WEIGHTS))
        changed = [k for k in before if k.startswith("visual.") and not torch.equal(before[k], after[k])]
        assert (not changed) if freeze else changed, freeze
        assert (out / "checkpoint/model/attribute_head.safetensors").is_file()
    with pytest.raises(FinevlError, match="unknown attribute"):
        train_tower(_tower_cfg(world, tmp_path / "bad", attributes="shape,smell"))


def test_lit_keeps_the_image_tower_and_trains_the_text_tower(world, tmp_path):
    start = load_clip("finevl-tiny-conv").save(tmp_path / "start")
    before = load_file(str(start / "open_clip_model.safetensors"))
    cfg = ClipTrainConfig(
        data=str(world), out=str(tmp_path / "lit"), model=str(start), steps=2, batch_size=8,
        warmup_steps=1, lock_image=True, hard_negatives=2,
    )  # fmt: skip
    train_clip(cfg, default_vocab=negative_vocab())
    after = load_file(str(tmp_path / "lit" / WEIGHTS))
    image = [k for k in before if k.startswith("visual.")]
    assert image and all(torch.equal(before[k], after[k]) for k in image)  # batch-norm statistics too
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("transformer."))


def test_context_tower_keeps_the_map_shapes_and_gives_cells_positions():
    torch.manual_seed(0)
    clip = load_clip("finevl-tiny-conv-ctx").eval()
    trunk = clip.inner.visual.trunk
    pixels = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        maps = trunk.forward_intermediates(pixels, intermediates_only=True)
        assert [m.shape[1:] for m in maps] == [(32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4)]
        assert trunk.forward_features(torch.zeros(1, 3, 128, 128)).shape == (
            1,
            256,
            8,
            8,
        )  # positions resampled
        # a flat image's cells differ only by their learned positions
        flat = trunk.forward_features(torch.zeros(1, 3, 64, 64))[0].flatten(1)
        assert not torch.allclose(flat[:, 0], flat[:, 5])


def test_cell_targets_name_the_covering_object_or_none():
    from finevl.train.scene_heads import cell_targets

    owners = torch.full((1, 8, 8), -1, dtype=torch.int8)
    owners[0, :4, :4] = 0  # object 0 fills the top-left quarter
    owners[0, 4:, 4:6] = 1  # object 1 covers half of the bottom-right quarter's cells
    values = torch.tensor([[[3, 1, 2, 4], [5, 6, 1, 1]]])  # (N, M, A), indices + 1
    cells = cell_targets(owners, values, {0: 2})[0]  # a 2x2 grid
    assert cells.shape == (1, 2, 2, 4)
    assert cells[0, 0, 0].tolist() == [3, 1, 2, 4]
    assert cells[0, 0, 1].tolist() == [0, 0, 0, 0]  # background
    # the bottom-right cell is half object 1, half background: a tie goes to background (first)
    assert cells[0, 1, 1].tolist() == [0, 0, 0, 0]
    owners[0, 4:, 4:7] = 1
    assert cell_targets(owners, values, {0: 2})[0][0, 1, 1].tolist() == [5, 6, 1, 1]


def _obj(shape: str, color: str, cx: float, cy: float, radius: float, size: str = "small") -> dict:
    return {
        "shape": shape,
        "color": color,
        "size": size,
        "pattern": "solid",
        "center": [cx, cy],
        "radius": radius,
    }


def test_relation_triples_hold_in_the_scene():
    from finevl.language import vocab
    from finevl.train.scene_heads import RELATIONS, triple_targets

    shapes, colors = list(vocab.SHAPES), list(vocab.COLORS)
    scene = {
        "size": 64, "background": "snow", "occludes": [[0, 1]],
        "objects": [_obj("star", "red", 10, 30, 8, "large"), _obj("circle", "blue", 20, 31, 5)],
    }  # fmt: skip
    t = triple_targets([scene])
    v, r = len(shapes), len(RELATIONS)

    def held(a: str, rel: str, b: str) -> bool:
        return bool(t["shape"][0, (shapes.index(a) * r + RELATIONS.index(rel)) * v + shapes.index(b)])

    assert held("star", "left of", "circle") and held("star", "in front of", "circle")
    assert held("circle", "right of", "star") and held("circle", "behind", "star")
    assert not held("star", "right of", "circle") and not held("circle", "above", "star")
    assert t["shape"].sum() == 4 and t["color"].sum() == 4
    cv = len(colors)
    assert (
        t["color"][0, (colors.index("red") * r + RELATIONS.index("left of")) * cv + colors.index("blue")] == 1
    )


def test_binding_targets_tell_a_swap_apart():
    from finevl.language import vocab
    from finevl.train.scene_heads import binding_targets

    def scene(first: str, second: str) -> dict:
        objs = [_obj("star", first, 10, 10, 5), _obj("circle", second, 40, 40, 5)]
        return {"size": 64, "background": "snow", "objects": objs}

    a, b = binding_targets([scene("red", "blue"), scene("blue", "red")])["color+shape"]
    shapes, colors = list(vocab.SHAPES), list(vocab.COLORS)
    assert a[colors.index("red") * len(shapes) + shapes.index("star")] == 1
    assert b[colors.index("red") * len(shapes) + shapes.index("star")] == 0
    assert a.sum() == b.sum() == 2 and not torch.equal(a, b)  # same bag of colours, other bindings


def test_dense_and_relation_heads_train_and_report(world, tmp_path):
    out = tmp_path / "scene"
    weights = {"dense_weight": 1.0, "relation_weight": 1.0, "binding_weight": 1.0}
    summary = train_tower(_tower_cfg(world, out, model="finevl-tiny-conv-ctx", eval_split="val", **weights))
    scene = summary["metrics"]["scene"]
    assert set(scene) == {"dense_stage2", "dense_stage3", "relation_pairs", "binding_top"}
    assert set(scene["binding_top"]) == {"color+shape", "size+shape", "pattern+shape"}
    assert set(scene["dense_stage2"]) == {"shape", "color", "size", "pattern"}
    assert all(0.0 <= x <= 1.0 for x in scene["dense_stage3"].values())
    assert (out / "checkpoint/model/scene_heads.safetensors").is_file()
    # a continued run starts from the saved heads
    heads = load_file(str(out / "checkpoint/model/scene_heads.safetensors"))
    from finevl.train.scene_heads import SceneHeads

    fresh = SceneHeads({2: 128, 3: 256}, 128, relation=True, binding=True)
    assert set(heads) == set(fresh.state_dict())


def test_scene_supervision_needs_masks_and_stage_maps(world, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(world, bare)
    (bare / "instances.json").unlink()
    with pytest.raises(FinevlError, match="need a world with object masks"):
        train_tower(_tower_cfg(bare, tmp_path / "a", dense_weight=1.0))
    assert not (tmp_path / "a").exists()  # refused before the run folder is made
    # relations and bindings read the scene records alone
    relation = train_tower(_tower_cfg(bare, tmp_path / "r", model="finevl-tiny-conv", relation_weight=1.0))
    assert set(relation["metrics"]["scene"]) == {"relation_pairs"}
    with pytest.raises(FinevlError, match="four stage maps"):
        train_tower(_tower_cfg(world, tmp_path / "b", model="finevl-tiny-vit", dense_weight=1.0))
    for stages, message in (("4", "stage indices 0-3"), ("", "stage indices 0-3"), ("2,x", "integers")):
        with pytest.raises(FinevlError, match=message):
            _tower_cfg(world, tmp_path / "c", dense_weight=1.0, dense_stages=stages)
    with pytest.raises(FinevlError, match="must be >= 0"):
        _tower_cfg(world, tmp_path / "d", relation_weight=-1.0)


def test_lit_with_an_unlocked_head_trains_only_the_head_on_the_image_side(world, tmp_path):
    start = load_clip("finevl-tiny-conv").save(tmp_path / "start")
    before = load_file(str(start / "open_clip_model.safetensors"))
    cfg = ClipTrainConfig(
        data=str(world), out=str(tmp_path / "lit"), model=str(start), steps=2, batch_size=8,
        warmup_steps=1, lock_image=True, unlock_image_head=True,
    )  # fmt: skip
    train_clip(cfg)
    after = load_file(str(tmp_path / "lit" / WEIGHTS))
    trunk = [k for k in before if k.startswith("visual.trunk.")]
    assert trunk and all(torch.equal(before[k], after[k]) for k in trunk)
    assert not torch.equal(before["visual.head.proj.weight"], after["visual.head.proj.weight"])
    with pytest.raises(FinevlError, match="needs --lock-image"):
        ClipTrainConfig(data=str(world), out=str(tmp_path / "x"), unlock_image_head=True)
    vit = ClipTrainConfig(
        data=str(world), out=str(tmp_path / "vit"), model="finevl-tiny-vit", steps=1, batch_size=8,
        lock_image=True, unlock_image_head=True,
    )  # fmt: skip
    with pytest.raises(FinevlError, match="timm image tower"):
        train_clip(vit)
