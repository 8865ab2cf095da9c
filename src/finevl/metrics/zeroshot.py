"""Zero-shot classification metrics as CLIP_benchmark defines them: `acc1`, `acc5` and
`mean_per_class_recall` (balanced accuracy of the top-1 prediction)."""

from __future__ import annotations

import torch


def _zeroshot(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict[str, float]:
    top = logits.topk(min(5, num_classes), dim=1).indices  # (N, k)
    hits = top == targets[:, None]
    pred = top[:, 0]
    recalls = [
        (pred[targets == c] == c).float().mean().item() for c in range(num_classes) if (targets == c).any()
    ]
    out = {"acc1": hits[:, :1].any(1).float().mean().item()}
    if num_classes >= 5:
        out["acc5"] = hits.any(1).float().mean().item()
    out["mean_per_class_recall"] = sum(recalls) / len(recalls)
    return out


def zeroshot_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Metrics of (N, C) logits against (N,) class indices.

    >>> zeroshot_metrics(torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]]), torch.tensor([0, 1, 1]))
    {'acc1': 0.6666666865348816, 'mean_per_class_recall': 0.75}
    """
    return _zeroshot(logits, targets, logits.shape[1])


class ZeroShotAccuracy:
    """Accumulates logits and targets over batches; `compute` gives `zeroshot_metrics`."""

    higher_is_better = True

    def __init__(self) -> None:
        self.logits: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.logits.append(logits.detach().float().cpu())
        self.targets.append(targets.detach().cpu())

    def compute(self) -> dict[str, float]:
        logits = torch.cat(self.logits)
        return _zeroshot(logits, torch.cat(self.targets), logits.shape[1])

    def confusion(self) -> torch.Tensor:
        """(C, C) counts: rows true class, columns predicted class."""
        logits, targets = torch.cat(self.logits), torch.cat(self.targets)
        c = logits.shape[1]
        return torch.bincount(targets * c + logits.argmax(1), minlength=c * c).view(c, c)
