"""Compositional accuracy (SugarCrepe): the share of pairs where the image is closer to
the positive caption than to the negative one, cos(v, p) > cos(v, n) (a tie counts as a
miss), per category, and `mean`, the macro mean over categories."""

from __future__ import annotations

import torch


def _hits(image: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """(N,) bool: row-aligned unit (N, D) features; the positive scores strictly higher."""
    return (image * positive).sum(-1) > (image * negative).sum(-1)


def _by_category(hits: torch.Tensor, categories: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for cat in dict.fromkeys(categories):
        mask = torch.tensor([c == cat for c in categories])
        out[cat] = hits[mask].float().mean().item()
    if out:
        out["mean"] = sum(out.values()) / len(out)
    return out


def compositional_accuracy(
    image: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, categories: list[str]
) -> dict[str, float]:
    """Accuracy per category and their macro `mean`.

    >>> v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> p = torch.tensor([[0.8, 0.6], [0.0, 1.0], [0.0, 1.0]])
    >>> n = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    >>> compositional_accuracy(v, p, n, ["swap_att", "swap_att", "add_obj"])
    {'swap_att': 0.5, 'add_obj': 1.0, 'mean': 0.75}
    """
    if not len(categories) == len(image) == len(positive) == len(negative):
        raise ValueError("image, positive, negative and categories must be row-aligned")
    return _by_category(_hits(image, positive, negative), categories)


class CompositionalAccuracy:
    """Accumulates pair outcomes over batches; `compute` gives `compositional_accuracy`.
    For a text-only (blind) score, pass the same image feature for every pair."""

    higher_is_better = True

    def __init__(self) -> None:
        self.hits: list[torch.Tensor] = []
        self.categories: list[str] = []

    def update(
        self, image: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, categories: list[str]
    ) -> None:
        if not len(categories) == len(image) == len(positive) == len(negative):
            raise ValueError("image, positive, negative and categories must be row-aligned")
        self.hits.append(_hits(image.float(), positive.float(), negative.float()).cpu())
        self.categories += categories

    def compute(self) -> dict[str, float]:
        if not self.categories:
            return {}
        return _by_category(torch.cat(self.hits), self.categories)
