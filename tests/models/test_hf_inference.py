"""The shorter inference forward of Hugging Face CLIP towers gives the towers' own pooled
outputs: padded texts of mixed lengths, either activation, both towers."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from finevl.models.hf_inference import image_features, text_features

SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4}


def _clip(act: str) -> torch.nn.Module:
    torch.manual_seed(0)
    text = {"vocab_size": 50, "max_position_embeddings": 16, "eos_token_id": 49, "hidden_act": act, **SIZES}
    vision = {"image_size": 16, "patch_size": 4, "hidden_act": act, **SIZES}
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()
    with torch.no_grad():  # biases and norms off their zero/one init, so each one counts
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_text_features_equal_the_tower_on_padded_texts(act):
    tower = _clip(act).text_model
    ids = torch.randint(1, 49, (4, 9))
    lengths = torch.tensor([9, 3, 6, 2])
    ids[torch.arange(4), lengths - 1] = 49  # end-of-text, then padding after it
    mask = (torch.arange(9)[None] < lengths[:, None]).long()
    ids[mask == 0] = 0
    with torch.inference_mode():
        theirs = tower(input_ids=ids, attention_mask=mask).pooler_output
        ours = text_features(tower, ids)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours[0], ours[1], atol=1e-3)  # rows are their own texts


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_image_features_equal_the_tower(act):
    tower = _clip(act).vision_model
    pixels = torch.randn(3, 3, 16, 16)
    with torch.inference_mode():
        assert torch.allclose(
            image_features(tower, pixels), tower(pixel_values=pixels).pooler_output, atol=1e-5
        )
