"""CLIP-S and RefCLIP-S (Hessel et al., 2021), from unit embeddings.

CLIP-S(c, v) = w * max(cos(c, v), 0) with w = 2.5. RefCLIP-S is the harmonic mean of CLIP-S
and the best reference similarity max_r cos(c, r) (Hessel's raw cosine; seed 000's variant,
`RefCLIP-S-j`, uses w * max(cos, 0) on the reference side too). torchmetrics' `CLIPScore`
reports 100 * max(cos, 0) of the batch mean; compare per pair: ours = 2.5 / 100 * theirs.
"""

from __future__ import annotations

from typing import Any

import torch

W = 2.5
PREFIX = "A photo depicts "  # Hessel et al. (and seed 000) prefix candidates and references alike


def clip_s(image_features: torch.Tensor, text_features: torch.Tensor, w: float = W) -> torch.Tensor:
    """Per-pair CLIP-S of row-aligned unit (N, D) image and text features.

    >>> clip_s(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.6, 0.8], [-1.0, 0.0]]))
    tensor([1.5000, 0.0000])
    """
    return w * (image_features * text_features).sum(-1).clamp(min=0)


def best_reference_cosine(text_features: torch.Tensor, refs: list[torch.Tensor]) -> torch.Tensor:
    """max over each candidate's own references of cos(candidate, reference): (N,)."""
    return torch.stack([(r @ t).max() for t, r in zip(text_features, refs, strict=True)])


def refclip_s(
    clip_scores: torch.Tensor, ref_cosine: torch.Tensor, w: float = W, variant: str = "hessel"
) -> torch.Tensor:
    """Harmonic mean of CLIP-S and the reference side: Hessel's raw best cosine (as in the
    authors' code; it may be negative), or w * max(cos, 0) for seed 000's 'j' variant. A pair
    whose two sides sum to <= 0 scores 0.

    >>> refclip_s(torch.tensor([2.0]), torch.tensor([-0.2]))
    tensor([-0.4444])
    """
    ref = w * ref_cosine.clamp(min=0) if variant == "j" else ref_cosine
    total = clip_scores + ref
    return torch.where(total > 0, 2 * clip_scores * ref / total.clamp(min=1e-12), torch.zeros_like(total))


def pair_scores(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    refs: list[torch.Tensor] | None = None,
    w: float = W,
) -> dict[str, torch.Tensor]:
    """Per-pair CLIP-S, and RefCLIP-S and RefCLIP-S-j when each pair has its references'
    unit embeddings: the one computation behind the metric, `finevl score` and the reward."""
    out = {"CLIP-S": clip_s(image_features, text_features, w)}
    if refs is not None:
        cos = best_reference_cosine(text_features, refs)
        out["RefCLIP-S"] = refclip_s(out["CLIP-S"], cos, w)
        out["RefCLIP-S-j"] = refclip_s(out["CLIP-S"], cos, w, variant="j")
    return out


class CaptionEmbedder:
    """A CLIP's text side as CLIP-S reads it: every text prefixed ("A photo depicts ", as
    Hessel et al.) and each distinct text embedded once."""

    def __init__(self, clip: Any, prefix: str = PREFIX, known: dict[str, torch.Tensor] | None = None):
        self.clip, self.prefix, self.known = clip, prefix, dict(known or {})

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """(N, D) unit embeddings, one row per text: repeats embedded once, texts `known`
        (embedded beforehand, e.g. in shares over processes) not at all. Nothing is kept
        between calls, so a reward scoring new captions every step does not grow."""
        new = [t for t in dict.fromkeys(texts) if t not in self.known]
        fresh = (
            dict(zip(new, self.clip.embed_texts([self.prefix + t for t in new]), strict=True)) if new else {}
        )
        return torch.stack([self.known[t] if t in self.known else fresh[t] for t in texts])

    def references(self, refs: list[list[str]]) -> list[torch.Tensor]:
        """Each item's references as a (R, D) tensor, every distinct reference embedded once."""
        flat = [r for rs in refs for r in rs]
        emb = self(flat) if flat else torch.empty(0)
        bounds = torch.tensor([0, *(len(rs) for rs in refs)]).cumsum(0).tolist()
        return [emb[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


class ClipScore:
    """Accumulates per-pair CLIP-S (and RefCLIP-S when references are given); `compute`
    gives the means. `higher_is_better`."""

    higher_is_better = True

    def __init__(self, w: float = W) -> None:
        self.w = w
        self.scores: list[torch.Tensor] = []
        self.ref_scores: list[torch.Tensor] = []
        self.ref_scores_j: list[torch.Tensor] = []

    def update(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        refs: list[torch.Tensor] | None = None,
    ) -> None:
        scores = pair_scores(image_features, text_features, refs, self.w)
        self.scores.append(scores["CLIP-S"])
        if refs is not None:
            self.ref_scores.append(scores["RefCLIP-S"])
            self.ref_scores_j.append(scores["RefCLIP-S-j"])

    def compute(self) -> dict[str, float]:
        out = {"CLIP-S": torch.cat(self.scores).mean().item()}
        if self.ref_scores:
            out["RefCLIP-S"] = torch.cat(self.ref_scores).mean().item()
            out["RefCLIP-S-j"] = torch.cat(self.ref_scores_j).mean().item()
        return out


class ProjectedFeatures(torch.nn.Module):
    """A Hugging Face `CLIPModel` as torchmetrics' `CLIPScore` expects it: `config`, and
    tensors from `get_*_features` (transformers 5 returns model outputs there)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.m, self.config = model, model.config

    def get_image_features(self, *args: object, **kwargs: object) -> torch.Tensor:
        out = self.m.get_image_features(*args, **kwargs)
        return out if torch.is_tensor(out) else out.pooler_output

    def get_text_features(self, *args: object, **kwargs: object) -> torch.Tensor:
        out = self.m.get_text_features(*args, **kwargs)
        return out if torch.is_tensor(out) else out.pooler_output


def torchmetrics_clipscore(clip: object) -> object:
    """torchmetrics' `CLIPScore` on a finevl HF-family `Clip` (the external oracle; it
    reports 100 * max(cos, 0) of the batch mean)."""
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPProcessor

    processor = CLIPProcessor(image_processor=clip._image_processor, tokenizer=clip._tokenizer)  # type: ignore[attr-defined]
    model = ProjectedFeatures(clip.inner)  # type: ignore[attr-defined]
    return CLIPScore(model_name_or_path=lambda: (model, processor))
