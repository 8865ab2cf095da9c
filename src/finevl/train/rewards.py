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
from finevl.metrics.clipscore import CaptionEmbedder, pair_scores
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
        self.texts = CaptionEmbedder(clip)
        # every image's references embedded once (so a resumed run scores alike)
        self.ref_emb = self.texts.references(refs) if weights.refclip else None

    def _clip_terms(self, idx: list[int], captions: list[str], parts: dict[str, torch.Tensor]) -> None:
        refs = None if self.ref_emb is None else [self.ref_emb[i] for i in idx]
        scores = pair_scores(self.image_emb[idx], self.texts(captions), refs)
        parts["CLIP-S"] = scores["CLIP-S"]
        if refs is not None:
            parts["RefCLIP-S"] = scores["RefCLIP-S"]

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
            out[name][keep] = value.float()  # a term scored under bf16 autocast
        out["reward"] = sum((weights[n] * out[n] for n in parts), torch.zeros(len(captions)))
        return out
