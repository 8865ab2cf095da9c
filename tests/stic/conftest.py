"""A tiny LLaVA built from a tiny CLIP and a word tokenizer over the small world's text, on
a ViT tower and on the conv tower (whose image tokens are stage-map cells)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finevl.data.tokenizer import train_word_tokenizer
from finevl.models.clip import load_clip
from finevl.models.lvlm import CHAT_WORDS, build_lvlm
from finevl.train.stic.data import split_texts
from finevl.train.stic.prompts import all_prompts


def _saved_clip(preset: str, root: Path) -> str:
    torch.manual_seed(0)
    return str(load_clip(preset).save(root / "clip"))


def _saved_lvlm(world: Path, clip: str, root: Path) -> str:
    """An untrained tiny LLaVA saved once: its weights are random but its wiring is real."""
    texts = split_texts(world, "train") + all_prompts() + [CHAT_WORDS]
    tok = train_word_tokenizer(texts, root / "tok", 256)
    return str(build_lvlm(load_clip(clip), tok, "tiny", seed=0).save(root / "model"))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    return _saved_clip("finevl-tiny-vit", tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def tiny_lvlm_dir(world, tiny_clip, tmp_path_factory):
    return _saved_lvlm(world, tiny_clip, tmp_path_factory.mktemp("lvlm"))


@pytest.fixture(scope="session")
def conv_clip(tmp_path_factory):
    return _saved_clip("finevl-tiny-conv", tmp_path_factory.mktemp("conv"))


@pytest.fixture(scope="session")
def conv_lvlm_dir(world, conv_clip, tmp_path_factory):
    return _saved_lvlm(world, conv_clip, tmp_path_factory.mktemp("conv-lvlm"))
