"""Seed 000's grammar head: a 2-layer MLP on CLIP's pooled text output that tells a
grammatical caption from a corrupted one. Its P(grammatical) joins the SCST reward so CLIP-S
cannot be gamed with broken text.

Saved as a folder: `clip/` (the fine-tuned CLIP in its family's layout) and
`grammar_head.safetensors`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from finevl.data.files import replace_dir, temp_sibling
from finevl.errors import FinevlError
from finevl.models.auto import Pretrained
from finevl.models.clip import Clip, load_clip

HEAD_FILE = "grammar_head.safetensors"


class GrammarHead(nn.Module):
    """Linear(d, d, no bias) -> ReLU -> Linear(d, 2, no bias), as upstream."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(width, width, bias=False), nn.ReLU(), nn.Linear(width, 2, bias=False)
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


class GrammarModel(Pretrained, nn.Module):
    """A CLIP whose text tower also feeds a grammar head."""

    def __init__(self, clip: Clip, head: GrammarHead | None = None):
        super().__init__()
        self.clip = clip
        width = clip.encode_text_pooled(clip.tokenize(["a"])).shape[-1]
        self.head = head or GrammarHead(width)

    def logits(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(grammar logits (B, 2), unit text embeddings (B, D)) in one text-tower pass."""
        pooled = self.clip.encode_text_pooled(self.clip.tokenize(texts))
        emb = nn.functional.normalize(self.clip.project_text(pooled), dim=-1)
        return self.head(pooled), emb

    @torch.inference_mode()
    def p_grammatical(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """(B,) softmax probability of class 1 (grammatical): the reward term."""
        out = [self.logits(texts[i : i + batch_size])[0] for i in range(0, len(texts), batch_size)]
        return torch.softmax(torch.cat(out), dim=-1)[:, 1]

    def save(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        tmp = temp_sibling(out_dir)
        self.clip.save(tmp / "clip")
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(tmp / HEAD_FILE))
        replace_dir(tmp, out_dir)
        return out_dir


def load_grammar(path: str | Path) -> GrammarModel:
    """A saved grammar model folder (`finevl grammar train`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / HEAD_FILE).is_file() or not (path / "clip").is_dir():
        raise FinevlError(f"{path}: not a grammar model (needs clip/ and {HEAD_FILE})")
    model = GrammarModel(load_clip(path / "clip"))
    try:
        model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
    except (SafetensorError, RuntimeError) as e:
        raise FinevlError(f"{path / HEAD_FILE}: cannot load the grammar head ({e})") from None
    return model.eval()
