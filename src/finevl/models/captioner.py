"""A captioner: a transformer decoder that attends to a frozen CLIP image tower's tokens.

The decoder is transformers' GPT-2 with cross-attention (so greedy, beam and sampling
decoding and the KV cache are `generate`'s); a LayerNorm + Linear maps the CLIP token
features to its width. `Captioner` is a `PreTrainedModel` with its own `CaptionerConfig`, so
`save_pretrained` / `from_pretrained` (safetensors) work as for any HF model; the checkpoint
folder also holds the word tokenizer and names the CLIP model whose features it reads.

>>> cfg = CaptionerConfig(vision_dim=16, vocab_size=50, d_model=32, layers=1, heads=2)
>>> model = Captioner(cfg).eval()
>>> ids = model.generate_ids(torch.randn(2, 5, 16), max_new_tokens=4)
>>> ids.shape[0], ids.shape[1] <= 5
(2, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, PretrainedConfig, PreTrainedModel

from finevl.data.files import save_pretrained_atomic
from finevl.errors import FinevlError
from finevl.models.auto import Pretrained

Decoding = Literal["greedy", "beam", "sample"]
MAX_NEW_TOKENS = 64  # DESIGN.md: captioners generate at most 64 tokens


class CaptionerConfig(PretrainedConfig):
    """Sizes of the decoder, the width of the CLIP features it reads, and which CLIP."""

    model_type = "finevl-captioner"

    def __init__(
        self,
        vision_dim: int = 128,
        vocab_size: int = 512,
        d_model: int = 256,
        layers: int = 3,
        heads: int = 4,
        max_positions: int = 80,
        clip_model: str = "",
        suppress_token_ids: list[int] | None = None,
        bos_token_id: int = 2,
        eos_token_id: int = 3,
        pad_token_id: int = 0,
        **kwargs: Any,
    ):
        self.vision_dim, self.vocab_size, self.d_model = vision_dim, vocab_size, d_model
        self.layers, self.heads, self.max_positions = layers, heads, max_positions
        self.clip_model = clip_model
        self.suppress_token_ids = list(suppress_token_ids or [])  # never generated: pad, bos, unk, ...
        super().__init__(
            bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs
        )

    def decoder_config(self) -> GPT2Config:
        return GPT2Config(
            vocab_size=self.vocab_size,
            n_positions=self.max_positions,
            n_embd=self.d_model,
            n_layer=self.layers,
            n_head=self.heads,
            add_cross_attention=True,
            tie_word_embeddings=False,  # nested tied weights would not save as safetensors
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
        )


class Captioner(PreTrainedModel):
    """CLIP token features (B, N, vision_dim) -> caption token logits."""

    config_class = CaptionerConfig
    base_model_prefix = "captioner"

    def __init__(self, config: CaptionerConfig):
        super().__init__(config)
        self.visual_proj = nn.Sequential(
            nn.LayerNorm(config.vision_dim), nn.Linear(config.vision_dim, config.d_model)
        )
        self.decoder = GPT2LMHeadModel(config.decoder_config())
        self.post_init()

    def forward(
        self,
        image_features: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> Any:
        """Teacher-forced logits (and the mean token loss when `labels` are given, -100 ignored)."""
        if attention_mask is None:  # padding only ever trails, but say so to the decoder
            attention_mask = (input_ids != self.config.pad_token_id).long()
        return self.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=self.visual_proj(image_features),
            labels=labels,
        )

    def token_logprobs(self, image_features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B, L-1) log-probability of each next token of `ids` (which start with BOS); the
        attention mask is the generated caption's, so any token before EOS counts as it did
        when it was sampled."""
        upto_eos = caption_mask(ids, self.config.eos_token_id)
        mask = torch.cat([torch.ones_like(upto_eos[:, :1]), upto_eos[:, :-1]], dim=1).long()
        logits = self(image_features, ids[:, :-1], attention_mask=mask).logits
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)

    @torch.no_grad()
    def generate_ids(
        self,
        image_features: torch.Tensor,
        decoding: Decoding = "greedy",
        max_new_tokens: int = 20,
        num_beams: int = 3,
        num_return_sequences: int = 1,
        temperature: float = 1.0,
        use_cache: bool = True,
        min_new_tokens: int = 0,
    ) -> torch.Tensor:
        """(B * num_return_sequences, 1 + T) token ids starting with BOS, padded after EOS.
        Sampling is plain multinomial at `temperature` (no top-k), as SCST needs."""
        if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise FinevlError(f"max_new_tokens must be in 1..{MAX_NEW_TOKENS}, not {max_new_tokens}")
        start = torch.full((len(image_features), 1), self.config.bos_token_id, device=image_features.device)
        options: dict[str, Any] = {"do_sample": False, "num_beams": 1}
        if decoding == "beam":
            options.update(num_beams=max(num_beams, num_return_sequences))
        elif decoding == "sample":
            options.update(do_sample=True, top_k=0, top_p=1.0, temperature=temperature)
        return self.decoder.generate(
            input_ids=start,
            attention_mask=torch.ones_like(start),
            encoder_hidden_states=self.visual_proj(image_features),
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            num_return_sequences=num_return_sequences,
            use_cache=use_cache,
            suppress_tokens=self._never_generated(),
            pad_token_id=self.config.pad_token_id,
            eos_token_id=self.config.eos_token_id,
            bos_token_id=self.config.bos_token_id,
            **options,
        )

    def _never_generated(self) -> list[int]:
        cfg = self.config
        return sorted({cfg.pad_token_id, cfg.bos_token_id, *cfg.suppress_token_ids} - {cfg.eos_token_id})


def caption_mask(ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """(B, L-1) 1 for each generated token up to and including the first EOS, else 0."""
    gen = ids[:, 1:]
    after_eos = (gen == eos_token_id).long().cumsum(1) - (gen == eos_token_id).long()
    return (after_eos == 0).float()


def detokenize(text: str) -> str:
    """The word tokenizer's spaced output as a sentence: no space before punctuation,
    first letter upper-case.

    >>> detokenize('a medium - sized star and the word " seven " .')
    'A medium-sized star and the word "seven".'
    """
    text = re.sub(r"\s+([.,;:!?])", r"\1", text.strip())
    text = re.sub(r"\s*-\s*", "-", text)  # "medium - sized"
    text = re.sub(r'"\s*([^"]*?)\s*"', r'"\1"', text)  # the word " seven "
    return text[:1].upper() + text[1:]


@dataclass
class CaptionerBundle(Pretrained):
    """A captioner, its word tokenizer and the CLIP whose image tokens it reads."""

    model: Captioner
    tokenizer: Any

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [detokenize(t) for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def encode(self, captions: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """BOS + ids + EOS, padded: (input ids, labels with padding as -100)."""
        rows = [self.tokenizer(c, add_special_tokens=False)["input_ids"][: max_length - 2] for c in captions]
        cfg = self.model.config
        rows = [[cfg.bos_token_id, *r, cfg.eos_token_id] for r in rows]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), cfg.pad_token_id, dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, : len(r)] = torch.tensor(r)
        labels = ids.clone()
        labels[ids == cfg.pad_token_id] = -100
        labels[:, 0] = -100
        return ids, labels

    def save(self, out_dir: str | Path) -> Path:
        """Model (safetensors) and tokenizer in one folder, written atomically."""
        return save_pretrained_atomic(out_dir, self.model, self.tokenizer)


def new_captioner(tokenizer: Any, vision_dim: int, clip_model: str, **sizes: int) -> CaptionerBundle:
    """A freshly initialised captioner for `tokenizer`'s vocabulary."""
    cfg = CaptionerConfig(
        vision_dim=vision_dim,
        vocab_size=len(tokenizer),
        clip_model=clip_model,
        suppress_token_ids=[i for i in tokenizer.all_special_ids if i != tokenizer.eos_token_id],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
    )
    return CaptionerBundle(Captioner(cfg), tokenizer)


def load_captioner(path: str | Path) -> CaptionerBundle:
    """A saved captioner folder (local only; safetensors only)."""
    from finevl.data.tokenizer import load_tokenizer
    from finevl.models.clip import check_safetensors

    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise FinevlError(f"{path}: not a captioner checkpoint (needs config.json and model.safetensors)")
    check_safetensors(path / "model.safetensors")
    try:
        model = Captioner.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise FinevlError(f"{path}: cannot load the captioner ({e})") from None
    return CaptionerBundle(model.eval(), load_tokenizer(path))
