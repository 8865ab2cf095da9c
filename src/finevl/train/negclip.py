"""open_clip's `ClipLoss` with hard negative captions (NegCLIP, Yuksekgonul et al. 2023).

Negatives join the text side of the image-to-text softmax only: image i is scored against
every caption of the global batch and every negative, and must pick its own caption; the
text-to-image direction is unchanged. Negatives are gathered across processes with their
gradients, like the features (`gather_with_grad=True`), so N processes step exactly as one
on the whole batch. A padded negative (a caption with fewer than K editable words) is masked
out of the softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip import ClipLoss
from open_clip.loss import gather_features


class NegClipLoss(ClipLoss):
    """`ClipLoss(local_loss=False, gather_with_grad=True)`, plus optional negatives."""

    def __init__(self, rank: int = 0, world_size: int = 1):
        super().__init__(local_loss=False, gather_with_grad=True, rank=rank, world_size=world_size)

    def forward(  # type: ignore[override]
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        negative_features: torch.Tensor | None = None,
        negative_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean of the two directions' cross-entropies; `negative_mask` (bool, one per
        negative row) keeps the real negatives."""
        if negative_features is None:
            return super().forward(image_features, text_features, logit_scale)
        if self.world_size > 1:
            image_features, text_features = gather_features(
                image_features, text_features, False, True, self.rank, self.world_size
            )
            negative_features = torch.cat(torch.distributed.nn.all_gather(negative_features))
            negative_mask = torch.cat(torch.distributed.nn.all_gather(negative_mask.float())) > 0
        texts = torch.cat([text_features, negative_features])
        per_image = logit_scale * image_features @ texts.T
        keep = torch.cat([negative_mask.new_ones(len(text_features)), negative_mask]).to(per_image.device)
        per_image = per_image.masked_fill(~keep, float("-inf"))
        per_text = logit_scale * text_features @ image_features.T
        labels = torch.arange(len(image_features), device=image_features.device)
        return (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2
