"""A tiny LLaVA built from a tiny CLIP and a word tokenizer over the small world's text."""

from __future__ import annotations

import pytest
import torch

from finevl.data.tokenizer import train_word_tokenizer
from finevl.models.clip import load_clip
from finevl.models.lvlm import CHAT_WORDS, build_lvlm
from finevl.train.stic.data import split_texts
from finevl.train.stic.prompts import all_prompts


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    torch.manual_seed(0)
    return str(load_clip("finevl-tiny-vit").save(tmp_path_factory.mktemp("clip") / "clip"))


@pytest.fixture(scope="session")
def tiny_lvlm_dir(world, tiny_clip, tmp_path_factory):
    """An untrained tiny LLaVA saved once: its weights are random but its wiring is real."""
    root = tmp_path_factory.mktemp("lvlm")
    texts = split_texts(world, "train") + all_prompts() + [CHAT_WORDS]
    tok = train_word_tokenizer(texts, root / "tok", 256)
    lvlm = build_lvlm(load_clip(tiny_clip), tok, "tiny", seed=0)
    return str(lvlm.save(root / "model"))


@pytest.fixture(scope="session")
def conv_clip(tmp_path_factory):
    torch.manual_seed(0)
    return str(load_clip("finevl-tiny-conv").save(tmp_path_factory.mktemp("conv") / "clip"))


@pytest.fixture(scope="session")
def conv_lvlm_dir(world, conv_clip, tmp_path_factory):
    """The same tiny LLaVA on the conv tower: its image tokens are stage-map cells."""
    root = tmp_path_factory.mktemp("conv-lvlm")
    texts = split_texts(world, "train") + all_prompts() + [CHAT_WORDS]
    tok = train_word_tokenizer(texts, root / "tok", 256)
    return str(build_lvlm(load_clip(conv_clip), tok, "tiny", seed=0).save(root / "model"))
