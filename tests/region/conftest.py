"""A tiny ConvNeXt CLIP and an untrained region model over the small world's text."""

from __future__ import annotations

import pytest
import torch

from finevl.data.tokenizer import train_word_tokenizer
from finevl.models.clip import load_clip
from finevl.models.lvlm import CHAT_WORDS
from finevl.models.region import build_region_model
from finevl.train.region.prompts import all_region_prompts
from finevl.train.stic.data import split_texts


@pytest.fixture(scope="session")
def convnext_clip(tmp_path_factory):
    torch.manual_seed(0)
    return str(load_clip("finevl-tiny-convnext").save(tmp_path_factory.mktemp("cnx") / "clip"))


@pytest.fixture(scope="session")
def region_model_dir(world, convnext_clip, tmp_path_factory):
    """An untrained region model saved once: random weights, real wiring."""
    root = tmp_path_factory.mktemp("region")
    texts = split_texts(world, "train") + all_region_prompts() + [CHAT_WORDS]
    tok = train_word_tokenizer(texts, root / "tok", 1024)
    return str(build_region_model(convnext_clip, tok, seed=0).save(root / "model"))
