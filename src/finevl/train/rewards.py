"""The SCST reward: a weighted sum of CLIP-S, CIDEr-D, RefCLIP-S and the grammar head's
P(grammatical), each computed for a whole batch of captions at once.

CLIP-S prefixes candidates with "A photo depicts " and uses image embeddings computed once
(seed 000); CIDEr-D takes its document frequencies from the training references; RefCLIP-S
is Hessel's (raw best cosine to the prefixed references, embedded once). Empty captions
score 0 on every term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from finevl.metrics.captioning import CiderD
from finevl.metrics.clipscore import PREFIX, best_reference_cosine, clip_s, refclip_s
from finevl.models.clip import Clip
from finevl.models.grammar import GrammarModel


@dataclass
class RewardWeights:
    clip_s: float = 2.0
    cider: float = 0.0
    refclip: float = 0.0
    grammar: float = 0.0


class CaptionReward:
    """reward(image indices, captions) -> {"reward": (B,), and each weighted term's raw value}."""

    def __init__(
        self,
        clip: Clip,
        image_emb: torch.Tensor,
        refs: list[list[str]],
        weights: RewardWeights,
        grammar: GrammarModel | None = None,
    ):
        self.clip, self.image_emb, self.refs, self.w = clip.eval(), image_emb, refs, weights
        self.grammar = grammar
        self.cider = CiderD(refs) if weights.cider else None
        self.ref_emb = self._embed_references() if weights.refclip else None

    def _embed_references(self) -> list[torch.Tensor]:
        """Every image's prefixed references, embedded once (so a resumed run scores alike)."""
        texts = list(dict.fromkeys(r for refs in self.refs for r in refs))
        emb = dict(zip(texts, self.clip.embed_texts([PREFIX + t for t in texts]), strict=True))
        return [torch.stack([emb[r] for r in refs]) for refs in self.refs]

    def _clip_terms(self, idx: list[int], captions: list[str], parts: dict[str, torch.Tensor]) -> None:
        text = self.clip.embed_texts([PREFIX + c for c in captions])
        parts["CLIP-S"] = clip_s(self.image_emb[idx], text)
        if self.ref_emb is not None:
            cos = best_reference_cosine(text, [self.ref_emb[i] for i in idx])
            parts["RefCLIP-S"] = refclip_s(parts["CLIP-S"], cos)

    @torch.inference_mode()
    def __call__(self, idx: list[int], captions: list[str]) -> dict[str, torch.Tensor]:
        keep = [k for k, c in enumerate(captions) if c.strip()]
        kept_idx, kept = [idx[k] for k in keep], [captions[k] for k in keep]
        parts: dict[str, torch.Tensor] = {}
        if kept and (self.w.clip_s or self.w.refclip):
            self._clip_terms(kept_idx, kept, parts)
        if kept and self.cider is not None:
            parts["CIDEr-D"] = torch.from_numpy(
                self.cider.score(kept, [self.refs[i] for i in kept_idx])
            ).float()
        if kept and self.grammar is not None and self.w.grammar:
            parts["grammar"] = self.grammar.p_grammatical(kept)
        weights = {"CLIP-S": self.w.clip_s, "CIDEr-D": self.w.cider, "RefCLIP-S": self.w.refclip}
        weights["grammar"] = self.w.grammar
        out = {name: torch.zeros(len(captions)) for name in parts}
        for name, value in parts.items():
            out[name][keep] = value
        out["reward"] = sum((weights[n] * out[n] for n in parts), torch.zeros(len(captions)))
        return out
