"""The model contract: every kind saves with `save_pretrained`, `load_model` tells the kinds
apart by their folders, and `from_pretrained` refuses a folder of another kind."""

from __future__ import annotations

import pytest
import torch

from finevl.data.tokenizer import train_word_tokenizer
from finevl.errors import FinevlError
from finevl.models.attribute_judge import AttributeJudge
from finevl.models.auto import load_model, model_kind
from finevl.models.captioner import CaptionerBundle, new_captioner
from finevl.models.clip import Clip, HfClip, OpenClip, load_clip
from finevl.models.grammar import GrammarModel
from finevl.models.lvlm import CHAT_WORDS, Lvlm, build_lvlm
from finevl.models.region import RegionLvlm, build_region_model

TEXTS = ["a red star on snow", "a small blue circle left of a square", CHAT_WORDS]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[object, object]]:
    """One tiny model of every kind, saved: kind -> (model, folder)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    vit, conv, hf = (load_clip(name) for name in ("finevl-tiny-vit", "finevl-tiny-conv", "hf-tiny-vit"))
    tok = train_word_tokenizer(TEXTS, root / "tok", 64)
    models = {
        "clip": vit,
        "hf-clip": hf,
        "captioner": new_captioner(tok, 128, "finevl-tiny-vit", d_model=32, layers=1, heads=2),
        "grammar": GrammarModel(vit),
        "judge": AttributeJudge(
            {"color": ["red", "blue"], "pattern": ["plain"], "size": ["small"], "background": ["snow"]}
        ),
        "lvlm": build_lvlm(vit, tok, "tiny", seed=0),
        "region": build_region_model(conv, tok, seed=0),
    }
    return {kind: (model, model.save_pretrained(root / kind)) for kind, model in models.items()}


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("clip", OpenClip),
        ("hf-clip", HfClip),
        ("captioner", CaptionerBundle),
        ("grammar", GrammarModel),
        ("judge", AttributeJudge),
        ("lvlm", Lvlm),
        ("region", RegionLvlm),
    ],
)
def test_load_model_returns_the_kind_that_was_saved(saved, kind, cls):
    model, folder = saved[kind]
    assert model_kind(folder) == kind.removeprefix("hf-")
    again = load_model(folder)
    assert type(again) is cls
    assert type(cls.from_pretrained(folder)) is cls
    state = again.model.state_dict() if kind in ("captioner", "lvlm") else again.state_dict()
    first = next(iter(state))
    want = model.model.state_dict() if kind in ("captioner", "lvlm") else model.state_dict()
    assert torch.equal(state[first], want[first])


def test_from_pretrained_refuses_another_kind_and_a_stranger(saved, tmp_path):
    with pytest.raises(FinevlError, match="a clip model, not a GrammarModel"):
        GrammarModel.from_pretrained(saved["clip"][1])
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(FinevlError, match="not a finevl model folder"):
        load_model(tmp_path)
    with pytest.raises(FinevlError, match="model directory not found"):
        load_model(tmp_path / "missing")


def test_clip_from_pretrained_takes_preset_names_and_places_the_model(saved):
    clip = Clip.from_pretrained("finevl-tiny-vit", dtype=torch.bfloat16)
    assert isinstance(clip, OpenClip) and clip.dtype == torch.bfloat16
    judge = load_model(saved["judge"][1], dtype=torch.float64)
    assert next(judge.parameters()).dtype == torch.float64
