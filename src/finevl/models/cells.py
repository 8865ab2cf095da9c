"""A conv tower's stage-map cells as a Hugging Face vision model, so a LLaVA can stand on it.

`LlavaForConditionalGeneration` wants a vision model whose `hidden_states[layer]` are
(B, N, C) tokens and whose config has a `hidden_size`. transformers' `TimmWrapperModel`
gives (B, C, H, W) maps and its config has no `hidden_size`, so it does not fit as is. This
registered model (`model_type` "finevl_cells") wraps the CLIP's timm trunk (finevl's conv
tower, or any timm tower with four stage maps) and returns each stage map's cells as tokens:
`hidden_states[k]` is stage k, so LLaVA's `vision_feature_layer` picks the stage. The LLaVA,
its processor (one token per cell: `patch_size` = the stage's reduction) and TRL's DPO stay
unchanged; `save_pretrained` / `from_pretrained` work once `register_cell_tower()` has run
(`build_lvlm` and `load_lvlm` call it; plain transformers needs that call first).

Batch norm: while none of the trunk's weights learn (LLaVA keeps its tower frozen), the
trunk stays in eval mode, so training the LLaVA never moves the tower's statistics.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from finevl.models.towers import register_towers

MODEL_TYPE = "finevl_cells"


class CellTowerConfig(PretrainedConfig):
    """A timm trunk by name, the input side and the stage whose cells are the tokens."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        timm_model_name: str = "finevl_convstages_s",
        image_size: int = 64,
        feature_stage: int = 2,
        hidden_size: int = 128,
        patch_size: int = 8,
        **kwargs: Any,
    ):
        self.timm_model_name = timm_model_name
        self.image_size = image_size
        self.feature_stage = feature_stage
        self.hidden_size = hidden_size  # the chosen stage's channels: LLaVA's projector input
        self.patch_size = patch_size  # the chosen stage's reduction: pixels per token a side
        super().__init__(**kwargs)


class CellTowerModel(PreTrainedModel):
    """`hidden_states[k]`: stage k's cells as (B, H_k * W_k, C_k) tokens, row-major;
    `last_hidden_state` the chosen stage's, `pooler_output` their mean."""

    config_class = CellTowerConfig
    main_input_name = "pixel_values"
    base_model_prefix = "cells"
    _no_split_modules: list[str] = []

    def __init__(self, config: CellTowerConfig):
        super().__init__(config)
        import timm

        register_towers()
        self.trunk = timm.create_model(config.timm_model_name, pretrained=False, num_classes=0)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Weights come from the CLIP (`lvlm.clip_vision_tower`) or a checkpoint; timm's own
        initialisation stands otherwise."""

    def _frozen(self) -> bool:
        return not any(p.requires_grad for p in self.trunk.parameters())

    def train(self, mode: bool = True) -> CellTowerModel:
        super().train(mode)
        if self._frozen():
            self.trunk.eval()
        return self

    def forward(
        self, pixel_values: torch.Tensor, return_dict: bool | None = None, **_: Any
    ) -> BaseModelOutputWithPooling:
        if self.trunk.training and self._frozen():
            self.trunk.eval()
        maps = self.trunk.forward_intermediates(pixel_values.to(self.dtype), intermediates_only=True)
        tokens = tuple(m.flatten(2).transpose(1, 2) for m in maps)
        chosen = tokens[self.config.feature_stage]
        return BaseModelOutputWithPooling(
            last_hidden_state=chosen, pooler_output=chosen.mean(1), hidden_states=tokens
        )


def register_cell_tower() -> None:
    """Make `finevl_cells` known to AutoConfig / AutoModel (so a LLaVA config names it);
    idempotent."""
    try:
        AutoConfig.register(MODEL_TYPE, CellTowerConfig)
        AutoModel.register(CellTowerConfig, CellTowerModel)
    except ValueError:  # already registered
        pass
