"""Small convolutional image towers that learn shape at 32-128 px, registered with timm.

open_clip builds a timm tower by name (`vision_cfg.timm_model_name`), so a finevl preset and
every checkpoint trained from it stay in LAION's layout (`open_clip_config.json` +
`open_clip_model.safetensors`); the names below exist once `finevl.models` registers them
(`load_clip` does), so open_clip outside finevl needs `import finevl.models.towers` first.

Why these and not the zoo's small towers at 64 px (docs/clip.md, "Towers that see"): every
zoo tower downsamples 4x in its stem (ResNet's strided conv + pool, ConvNeXt's 4x4 patchify,
a ViT's 8x8 patches), so a 10-pixel star is a couple of positions before any non-linearity
sees its outline. `ConvStages` keeps full resolution for its first 3x3 convolutions and
halves it by max-pooling after each stage (VGG-style), with batch norm: it learns shape in a
few hundred steps. Four stages, so its `forward_intermediates` gives the four stage maps
that the region model pools, as a ConvNeXt's does.

`context_layers` > 0 adds a small transformer over the last stage's cells, with learned
positions (`..._ctx`): a conv cell sees a window of the image, not where it is nor what lies
across it, and an average pool of cells loses "what is where"; after the context layers each
cell also carries its place and its neighbours, so relations survive the pool (docs/clip.md,
"Relations in the tower").
"""

from __future__ import annotations

import torch
from torch import nn

POOL_SIZE = (4, 4)  # the last map at 64 px; positions are resampled for other sizes


class CellContext(nn.Module):
    """Pre-norm transformer layers over a (B, C, H, W) map's cells, learned positions added
    first; returns the map's shape."""

    def __init__(self, channels: int, layers: int, heads: int = 4):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, POOL_SIZE[0] * POOL_SIZE[1], channels))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            channels, heads, 2 * channels, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from timm.layers import resample_abs_pos_embed

        b, c, h, w = x.shape
        pos = (
            self.pos if (h, w) == POOL_SIZE else resample_abs_pos_embed(self.pos, [h, w], list(POOL_SIZE), 0)
        )
        cells = self.norm(self.layers(x.flatten(2).transpose(1, 2) + pos.to(x.dtype)))
        return cells.transpose(1, 2).reshape(b, c, h, w)


class ConvStages(nn.Module):
    """`len(widths)` stages of `depth` x (conv 3x3, BatchNorm, ReLU), each followed by a 2x2
    max-pool; optional context layers over the last map's cells; global average pool; timm's
    classifier interface (`num_features`, `reset_classifier`, `forward_features`,
    `forward_head`, `forward_intermediates`)."""

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        depth: int = 1,
        num_classes: int = 0,
        context_layers: int = 0,
        stem_pool: int = 1,
        **_: object,
    ):
        super().__init__()
        # a 2x average pool before the first conv: at 128 px a FineShapes object is up to 50 px
        # across, wider than the 46 px the four stages see; pooled, it fits as at 64 px
        self.stem = nn.AvgPool2d(stem_pool) if stem_pool > 1 else nn.Identity()
        stages, chs = [], 3
        for width in widths:
            layers: list[nn.Module] = []
            for _k in range(depth):
                layers += [nn.Conv2d(chs, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                chs = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(2)
        self.context = CellContext(chs, context_layers) if context_layers else None
        self.num_features = chs
        self.feature_info = [
            {"num_chs": w, "reduction": stem_pool * 2 ** (k + 1), "module": f"stages.{k}"}
            for k, w in enumerate(widths)
        ]
        self.default_cfg = {"pool_size": POOL_SIZE}  # what open_clip's attention pools start from
        self.global_pool = "avg"
        self.head: nn.Module = nn.Linear(chs, num_classes) if num_classes else nn.Identity()

    def reset_classifier(self, num_classes: int = 0, global_pool: str | None = None) -> None:
        if global_pool not in (None, "", "avg"):
            raise ValueError(f"ConvStages pools by average only, not {global_pool!r}")
        self.global_pool = global_pool if global_pool is not None else self.global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        intermediates_only: bool = False,
        **_: object,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Each stage's map after its pooling (B, C_k, H/2^(k+1), W/2^(k+1)), as timm returns them."""
        n = len(self.stages)
        take = range(n - indices, n) if isinstance(indices, int) else indices or range(n)
        maps = []
        x = self.stem(x)
        for k, stage in enumerate(self.stages):
            x = self._stage(k, stage, x)
            maps.append(x)
        chosen = [maps[k] for k in take]
        return chosen if intermediates_only else (x, chosen)

    def _stage(self, k: int, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(stage(x))
        last = k == len(self.stages) - 1
        return self.context(x) if last and self.context is not None else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for k, stage in enumerate(self.stages):
            x = self._stage(k, stage, x)
        return x  # (B, C, H/16, W/16), or /32 behind a pooling stem

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3)) if self.global_pool else x
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


TOWERS = {
    "finevl_convstages_s": {"widths": (32, 64, 128, 256), "depth": 1},
    "finevl_convstages_m": {"widths": (48, 96, 192, 384), "depth": 2},
    "finevl_convstages_s_ctx": {"widths": (32, 64, 128, 256), "depth": 1, "context_layers": 2},
    # for 128 px: the same tower behind a 2x average-pool stem (its maps at 1/4 ... 1/32)
    "finevl_convstages_s2_ctx": {
        "widths": (32, 64, 128, 256),
        "depth": 1,
        "context_layers": 2,
        "stem_pool": 2,
    },
}


def register_towers() -> None:
    """Make the towers above creatable by name with `timm.create_model` (so open_clip presets
    can name them); idempotent."""
    import timm
    from timm.models import register_model

    for name, kwargs in TOWERS.items():
        if name in timm.list_models(name):
            continue

        def build(pretrained: bool = False, _kwargs: dict = kwargs, **extra: object) -> ConvStages:
            if pretrained:
                raise ValueError("finevl towers have no pretrained weights")
            extra.pop("pretrained_cfg", None)
            extra.pop("pretrained_cfg_overlay", None)
            extra.pop("cache_dir", None)
            return ConvStages(**{**_kwargs, **extra})  # type: ignore[arg-type]

        build.__name__ = name
        register_model(build)
