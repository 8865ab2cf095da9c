"""Inference forward of Hugging Face CLIP towers: the pooled token's features, with the same
values as `CLIPTextModel`/`CLIPVisionModel` (to float rounding) for less work. Inference
only (`Clip.embed_*`, without gradients): the residual sums are taken in place.

Four savings, each exact in arithmetic (docs/clip.md, "Scoring speed"):
- the last layer runs its query, output projection and MLP for the pooled token alone (the
  end-of-text or class token): about a fifth less arithmetic;
- the text tower needs no padding mask: causal attention keeps every position up to the
  end-of-text token from seeing the padding after it, so plain `is_causal` attention serves;
- QuickGELU, x * sigmoid(1.702 x), becomes one in-place SiLU: fc1's weights are scaled by
  1.702 and fc2 reads the result at 1 / 1.702;
- the output projection and fc2 add into the residual stream in their matrix product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import QuickGELUActivation

QUICK_GELU = 1.702


def text_features(tower: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """(B, W) a `CLIPTextTransformer`'s pooled output (before the projection) of padded ids."""
    h = tower.embeddings(input_ids=ids)
    for layer in tower.encoder.layers[:-1]:
        h = _layer(layer, h, causal=True)
    eos = ids.argmax(-1) if tower.eos_token_id == 2 else (ids == tower.eos_token_id).int().argmax(-1)
    seen = torch.arange(ids.shape[1], device=ids.device)[None] <= eos[:, None]  # causal keys of EOS
    return tower.final_layer_norm(_last_layer_at(tower.encoder.layers[-1], h, eos, seen))


def image_features(tower: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(B, W) a `CLIPVisionTransformer`'s pooled output (before the projection)."""
    h = tower.pre_layrnorm(tower.embeddings(pixels))
    for layer in tower.encoder.layers[:-1]:
        h = _layer(layer, h, causal=False)
    first = torch.zeros(len(h), dtype=torch.long, device=h.device)
    return tower.post_layernorm(_last_layer_at(tower.encoder.layers[-1], h, first, None))


def _layer(layer: nn.Module, h: torch.Tensor, causal: bool) -> torch.Tensor:
    """A pre-norm `CLIPEncoderLayer` on every position; `h` (this forward's own tensor) takes
    both residual sums in place."""
    attn, x = layer.self_attn, layer.layer_norm1(h)
    q, k, v = (_heads(p(x), attn.head_dim) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=attn.scale)
    _add_linear(h, attn.out_proj, out.transpose(1, 2))
    _add_linear(h, layer.mlp.fc2, *_mlp_hidden(layer.mlp, layer.layer_norm2(h)))
    return h


def _last_layer_at(
    layer: nn.Module, h: torch.Tensor, at: torch.Tensor, keys: torch.Tensor | None
) -> torch.Tensor:
    """(B, W) the layer's output at position `at[b]` of each row alone: its query attends to
    the `keys` it may see (all when None)."""
    attn, rows = layer.self_attn, torch.arange(len(h), device=h.device)
    x = layer.layer_norm1(h)
    q = _heads(attn.q_proj(x[rows, at])[:, None], attn.head_dim)
    k, v = _heads(attn.k_proj(x), attn.head_dim), _heads(attn.v_proj(x), attn.head_dim)
    mask = None if keys is None else keys[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
    h = h[rows, at]  # a copy: the rows read
    _add_linear(h, attn.out_proj, out)
    _add_linear(h, layer.mlp.fc2, *_mlp_hidden(layer.mlp, layer.layer_norm2(h)))
    return h


def _heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(B, N, W) -> (B, heads, N, head_dim)."""
    return x.unflatten(-1, (-1, head_dim)).transpose(1, 2)


def _add_linear(h: torch.Tensor, linear: nn.Linear, x: torch.Tensor, scale: float = 1.0) -> None:
    """h += scale * x @ W.T + b, in place: the matrix product adds into `h` (addmm_), so the
    residual sum needs neither a new tensor nor a pass of its own."""
    rows = h.view(-1, h.shape[-1])
    rows.addmm_(x.reshape(len(rows), -1), linear.weight.t(), alpha=scale).add_(linear.bias)


def _mlp_hidden(mlp: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A `CLIPMLP`'s activations before fc2, and the scale fc2 reads them at. QuickGELU is
    folded into the linear layers around it: silu(1.702 z) with fc2 scaled by 1 / 1.702, one
    in-place pass over the layer's largest tensor instead of three."""
    if not isinstance(mlp.activation_fn, QuickGELUActivation):
        return mlp.activation_fn(mlp.fc1(x)), 1.0
    z = F.linear(x, mlp.fc1.weight * QUICK_GELU, mlp.fc1.bias * QUICK_GELU)
    return F.silu(z, inplace=True), 1 / QUICK_GELU
