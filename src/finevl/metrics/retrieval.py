"""Image-text retrieval recall as CLIP_benchmark defines it, with several captions per image:
`image_retrieval_recall@k` (text queries find their image) and `text_retrieval_recall@k`
(image queries find any of their captions); a query counts when any positive is in its
top k."""

from __future__ import annotations

import torch


def _recall_at_k(scores: torch.Tensor, positives: torch.Tensor, k: int) -> float:
    """scores, positives: (Q, C); share of queries with a positive among their top k."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return positives.gather(1, top).any(dim=1).float().mean().item()


def retrieval_recall(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@k both ways for unit (N, D) images and (T, D) texts; text t describes image
    `text_to_image[t]`.

    >>> img = torch.eye(3); txt = torch.eye(3)[[0, 0, 1, 2]]
    >>> retrieval_recall(img, txt, torch.tensor([0, 0, 1, 2]), ks=(1,))
    {'image_retrieval_recall@1': 1.0, 'text_retrieval_recall@1': 1.0}
    """
    scores = text_features @ image_features.T  # (T, N)
    positives = torch.zeros_like(scores, dtype=torch.bool)
    positives[torch.arange(len(text_to_image)), text_to_image] = True
    out = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = _recall_at_k(scores, positives, k)
        out[f"text_retrieval_recall@{k}"] = _recall_at_k(scores.T, positives.T, k)
    return out


class RetrievalRecall:
    """Accumulates features over batches; `compute` gives `retrieval_recall`."""

    higher_is_better = True

    def __init__(self, ks: tuple[int, ...] = (1, 5, 10)) -> None:
        self.ks = ks
        self.images: list[torch.Tensor] = []
        self.texts: list[torch.Tensor] = []
        self.owners: list[torch.Tensor] = []
        self._n_images = 0

    def update(
        self, image_features: torch.Tensor, text_features: torch.Tensor, text_to_image: torch.Tensor
    ) -> None:
        """Add a batch of images and their texts (`text_to_image` indexes this batch's images)."""
        self.images.append(image_features.detach().float().cpu())
        self.texts.append(text_features.detach().float().cpu())
        self.owners.append(text_to_image.cpu() + self._n_images)
        self._n_images += image_features.shape[0]

    def compute(self) -> dict[str, float]:
        return retrieval_recall(
            torch.cat(self.images), torch.cat(self.texts), torch.cat(self.owners), self.ks
        )
