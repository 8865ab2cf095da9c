"""One CLIP interface over the field's two families.

`Clip` wraps an open_clip `CLIP` (any architecture of open_clip's zoo, or a finevl JSON
preset) or a Hugging Face `CLIPModel` (a preset or any local directory) and gives both the
same surface: `tokenize`, `preprocess`, `encode_image`, `encode_text`, `forward` (for
training), `save`. `load_clip(spec)` takes a preset name, an open_clip architecture name or a
checkpoint directory in either family's own layout, so every command takes either.

>>> clip = load_clip("finevl-tiny-vit")
>>> texts = clip.tokenize(["a red star on snow"])
>>> clip.encode_text(texts).shape
torch.Size([1, 128])
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from finevl.data.files import replace_dir, temp_sibling
from finevl.data.images import model_array
from finevl.errors import FinevlError
from finevl.models.auto import Pretrained
from finevl.models.device import placement, threads_for_load
from finevl.models.hf_inference import image_features, text_features

logger = logging.getLogger(__name__)

PRESETS = Path(__file__).parent / "presets"
OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS = "open_clip_config.json", "open_clip_model.safetensors"
MAX_LOGIT_SCALE = 100.0
INFERENCE_TOKENS = 2048
Family = Literal["open_clip", "hf"]


@dataclass
class TextBatch:
    """Tokenized texts: ids (B, L), the attention mask (HF family) and how many were cut."""

    ids: torch.Tensor
    attention_mask: torch.Tensor | None
    truncated: int

    def to(self, device: torch.device | str) -> TextBatch:
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return TextBatch(self.ids.to(device), mask, self.truncated)

    def __getitem__(self, index: slice | torch.Tensor) -> TextBatch:
        mask = None if self.attention_mask is None else self.attention_mask[index]
        return TextBatch(self.ids[index], mask, self.truncated)

    def __len__(self) -> int:
        return self.ids.shape[0]


def _inference(method: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """No gradients; on the CPU, as many threads as there are free cores."""

    @functools.wraps(method)
    def run(self: Clip, *args: Any, **kwargs: Any) -> torch.Tensor:
        threads = threads_for_load() if self.device.type == "cpu" else contextlib.nullcontext()
        with torch.inference_mode(), threads:
            return method(self, *args, **kwargs)

    return run


class Clip(Pretrained, nn.Module):
    """A CLIP model behind one interface (see the module docstring). `OpenClip` and `HfClip`
    adapt the two families; what they share lives here."""

    family: Family
    image_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    context_length: int

    def __init__(self, inner: nn.Module, tokenizer: Any, image_processor: Any, name: str):
        super().__init__()
        self.inner, self.name = inner, name
        self._tokenizer, self._image_processor = tokenizer, image_processor

    # -- placement -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # -- text ------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> TextBatch:
        """Tokenize to the context length; longer texts are truncated and counted."""
        if not texts:
            raise FinevlError("no captions to encode (empty caption list)")
        empty = [k for k, t in enumerate(texts) if not t.strip()]
        if empty:
            raise FinevlError(f"caption {empty[0]} is empty")
        ids, mask, lengths = self._token_ids(texts)
        ids, mask = self._trim(ids, mask, min(max(lengths), self.context_length))
        truncated = sum(n > self.context_length for n in lengths)
        if truncated:
            logger.warning(
                "%d of %d captions truncated to %d tokens", truncated, len(texts), self.context_length
            )
        return TextBatch(ids, mask, truncated)

    def _trim(
        self, ids: torch.Tensor, mask: torch.Tensor | None, longest: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Drop padding columns past the longest text: the causal text towers pool at the
        end-of-text token, which never sees later positions, so outputs are unchanged and
        short captions cost less. Only for pooling that allows it (argmax/eos)."""
        if not self._pools_at_end_of_text():
            return ids, mask
        return ids[:, :longest], None if mask is None else mask[:, :longest]

    def encode_text(self, texts: TextBatch, normalize: bool = True) -> torch.Tensor:
        """(B, D) text embeddings, unit length unless `normalize=False`."""
        texts = texts.to(self.device)
        if not self._pools_at_end_of_text():
            feats = self.inner.encode_text(texts.ids)  # custom (e.g. HF) text towers: as they are
        else:
            feats = self.project_text(self.encode_text_pooled(texts))
        return F.normalize(feats, dim=-1) if normalize else feats

    def _pools_at_end_of_text(self) -> bool:
        """Whether the text tower pools at the end-of-text token of a causal transformer."""
        return True

    def encode_text_pooled(self, texts: TextBatch) -> torch.Tensor:
        """(B, width) the text transformer's pooled end-of-text output, before the projection
        (what seed 000's grammar head reads)."""
        raise NotImplementedError

    def project_text(self, pooled: torch.Tensor) -> torch.Tensor:
        """The text projection into the joint space (unnormalised)."""
        proj = self.inner.text_projection
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj

    # -- images ----------------------------------------------------------------------
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A PIL image to the model's (3, S, S) input, as the checkpoint's own processor does."""
        return self.preprocess_batch([image])[0]

    def normalize_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 images already at `image_size` to model input: the fast path
        for in-memory datasets (same arithmetic as the processors after resizing)."""
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        # in place on a fresh contiguous copy: the same values with one buffer, 3x faster than
        # on the channels-last view of stacked arrays (a float input, as the edit's
        # differentiable pixels are, is copied too, so the caller's tensor stays)
        fresh = images.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        return fresh.div_(255.0).sub_(mean).div_(std)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, D) image embeddings of preprocessed (B, 3, S, S) pixels."""
        feats = self._image_features(pixels.to(self.device, self.dtype))
        return F.normalize(feats, dim=-1) if normalize else feats

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, N, W) the image tower's token features, before the projection: what a captioner
        attends to (each family says which)."""
        raise NotImplementedError

    def image_tower(self) -> list[nn.Module]:
        """The modules of the image side (tower and its projection)."""
        raise NotImplementedError

    def lock_image_tower(self, keep_head: bool = False) -> None:
        """LiT: the image side stops learning, batch-norm statistics included, so the text
        side learns to read a tower that already sees. With `keep_head`, the pool and
        projection after a timm trunk still learn (what open_clip's timm lock leaves), so
        the embedding can keep more of what the locked cells say."""
        for module in self.image_tower():
            module.eval().requires_grad_(False)
        if keep_head:
            head = getattr(getattr(self.inner, "visual", None), "head", None)
            if not isinstance(head, nn.Module) or not hasattr(self.inner.visual, "trunk"):
                raise FinevlError(f"{self.name}: --unlock-image-head needs a timm image tower (trunk + head)")
            head.train().requires_grad_(True)

    # -- batched inference -----------------------------------------------------------
    def _chunk(self, tokens_per_item: int) -> int:
        """Items per inference batch. On CPUs a chunk of about `INFERENCE_TOKENS` tokens keeps
        the activations in cache: 32 images of 65 tokens run about 2x faster than 256."""
        if next(self.parameters()).device.type != "cpu":
            return 256
        return max(1, INFERENCE_TOKENS // tokens_per_item)

    def _image_tokens(self) -> int:
        """Sequence length of the image tower (ViTs: patches + class token; else a proxy)."""
        return (self.image_size // self._patch_size()) ** 2 + 1

    def _patch_size(self) -> int:
        raise NotImplementedError

    @_inference
    def embed_texts(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """(T, D) unit embeddings of many texts, in cache-sized batches, without gradients
        (on the CPU in float32, wherever the model runs)."""
        batch = self.tokenize(texts)
        step = batch_size or self._chunk(batch.ids.shape[1])
        lengths = self._lengths(batch)
        # longest first, each chunk cut to its own longest text: less padding, same values
        order = torch.argsort(lengths, descending=True, stable=True)
        chunks = []
        for i in range(0, len(order), step):
            rows = order[i : i + step]
            ids, mask = self._trim(
                batch.ids[rows], _rows(batch.attention_mask, rows), int(lengths[rows].max())
            )
            chunks.append(F.normalize(self._embed_text_batch(TextBatch(ids, mask, 0)), dim=-1))
        return _host(torch.cat(chunks))[torch.argsort(order)]

    def _embed_text_batch(self, texts: TextBatch) -> torch.Tensor:
        """Inference: unnormalised text features (a family may take a faster path)."""
        return self.encode_text(texts, normalize=False)

    def _embed_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        """Inference: unit image features (a family may take a faster path)."""
        return self.encode_image(pixels)

    def _lengths(self, batch: TextBatch) -> torch.Tensor:
        """Tokens of each text up to its end-of-text (padding excluded)."""
        if batch.attention_mask is not None:
            return batch.attention_mask.sum(1)
        # open_clip: end-of-text is the largest id (what argmax pooling finds); id 0 is both
        # padding and a real token ("!"), so counting non-zero ids would cut texts short
        return batch.ids.argmax(1) + 1

    @_inference
    def embed_pixels(
        self, images: torch.Tensor, batch_size: int | None = None, tokens: bool = False
    ) -> torch.Tensor:
        """(N, D) unit embeddings of (N, 3, S, S) uint8 images at `image_size`; with
        `tokens`, (N, T, W) token features instead (`encode_image_tokens`)."""
        step = batch_size or self._chunk(self._image_tokens())
        encode = self.encode_image_tokens if tokens else self._embed_image_batch
        return _host(
            torch.cat(
                [encode(self.normalize_pixels(images[i : i + step])) for i in range(0, len(images), step)]
            )
        )

    @_inference
    def embed_images(self, images: list[Image.Image], batch_size: int | None = None) -> torch.Tensor:
        """(N, D) unit embeddings of PIL images through the checkpoint's own preprocessing."""
        step = batch_size or self._chunk(self._image_tokens())
        feats = []
        for i in range(0, len(images), 256):  # HF processors are faster on whole batches
            part = images[i : i + 256]
            at_size = self._at_size(part)
            if at_size is not None:  # normalised chunk by chunk, while it is in cache
                feats.append(self.embed_pixels(at_size, step))
                continue
            pixels = self._process(part)
            feats += [self._embed_image_batch(pixels[k : k + step]) for k in range(0, len(pixels), step)]
        return _host(torch.cat(feats))

    def preprocess_batch(self, images: list[Image.Image]) -> torch.Tensor:
        """(B, 3, S, S) model input, as the checkpoint's own processor makes it."""
        at_size = self._at_size(images)
        return self._process(images) if at_size is None else self.normalize_pixels(at_size)

    def _at_size(self, images: list[Image.Image]) -> torch.Tensor | None:
        """(B, 3, S, S) uint8 pixels of RGB images already at S x S, which skip the processor:
        its resize and crop would leave them as they are (PIL returns a copy at the same
        size), so only the normalisation remains. None when any image needs more."""
        side = (self.image_size, self.image_size)
        if not all(im.mode == "RGB" and im.size == side for im in images):
            return None
        arrays = [model_array(im, self.image_size) for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def _process(self, images: list[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    # -- training --------------------------------------------------------------------
    @property
    def logit_scale(self) -> nn.Parameter:
        """log of the learnable temperature's inverse (CLIP init: log(1/0.07))."""
        return self.inner.logit_scale

    def clamp_logit_scale(self) -> None:
        """Keep exp(logit_scale) at most 100, as CLIP does after each step."""
        with torch.no_grad():
            self.logit_scale.clamp_(0, torch.log(torch.tensor(MAX_LOGIT_SCALE)).item())

    def forward(
        self, pixels: torch.Tensor, texts: TextBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image features, text features, exp(logit_scale)): what `ClipLoss` takes."""
        return self.encode_image(pixels), self.encode_text(texts), self.logit_scale.exp()

    # -- saving ----------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> Path:
        """Save in the family's own layout, atomically (temporary folder, then rename)."""
        out = Path(out_dir)
        tmp = temp_sibling(out)
        self._save_files(tmp)
        replace_dir(tmp, out)
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path, **placement: Any) -> Clip:
        """A checkpoint folder of either family, or a preset or open_clip architecture name."""
        return load_clip(path, **placement)

    def _save_files(self, folder: Path) -> None:
        raise NotImplementedError


class OpenClip(Clip):
    """An open_clip `CLIP` (any architecture of its zoo, or a finevl preset), saved in
    open_clip's hub layout (`open_clip_config.json` + safetensors)."""

    family: Family = "open_clip"

    def __init__(self, inner: nn.Module, tokenizer: Any, preprocess: Any, name: str, config: dict[str, Any]):
        super().__init__(inner, tokenizer, preprocess, name)
        self.inner_config = config  # the architecture's config, saved beside the weights
        self.image_size = _side(inner.visual.image_size)
        self.image_mean, self.image_std = inner.visual.image_mean, inner.visual.image_std
        self.context_length = inner.context_length

    def _token_ids(self, texts: list[str]) -> tuple[torch.Tensor, None, list[int]]:
        lengths = [len(self._tokenizer.encode(t)) + 2 for t in texts]
        return self._tokenizer(texts, self.context_length), None, lengths

    def _pools_at_end_of_text(self) -> bool:
        return type(self.inner).__name__ == "CLIP" and getattr(self.inner, "text_pool_type", None) == "argmax"

    def encode_text_pooled(self, texts: TextBatch) -> torch.Tensor:
        """(B, width) the text transformer's pooled end-of-text output, before the projection
        (what seed 000's grammar head reads)."""
        texts = texts.to(self.device)
        if not self._pools_at_end_of_text():
            raise FinevlError(f"{self.name}: its text tower has no CLIP-style pooled output")
        from open_clip.transformer import text_global_pool

        # open_clip's `CLIP.encode_text` step for step, on a context trimmed to the batch's
        # longest text (positional embedding and causal mask sliced)
        m, n = self.inner, texts.ids.shape[1]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(texts.ids).to(cast) + m.positional_embedding[:n].to(cast)
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:n, :n]))
        return text_global_pool(x, texts.ids, m.text_pool_type)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.inner.encode_image(pixels)

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """open_clip ViT: patch tokens (after ln_post); timm towers: the last stage map's
        positions (or a timm ViT's tokens)."""
        pixels = pixels.to(self.device, self.dtype)
        visual = self.inner.visual
        if hasattr(visual, "trunk"):
            x = visual.trunk.forward_features(pixels)
            return x.flatten(2).transpose(1, 2) if x.ndim == 4 else x
        keep, visual.output_tokens = visual.output_tokens, True
        try:
            _, tokens = visual(pixels)
        finally:
            visual.output_tokens = keep
        return tokens

    def image_tower(self) -> list[nn.Module]:
        return [self.inner.visual]

    def _patch_size(self) -> int:
        return _side(getattr(self.inner.visual, "patch_size", 8))

    def _process(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([self._image_processor(im) for im in images])

    def _save_files(self, folder: Path) -> None:
        from open_clip.push_to_hf_hub import save_config_for_hf
        from safetensors.torch import save_file

        save_config_for_hf(self.inner, folder / OPEN_CLIP_CONFIG, self.inner_config)
        save_file({k: v.contiguous() for k, v in self.inner.state_dict().items()}, folder / OPEN_CLIP_WEIGHTS)


class HfClip(Clip):
    """A Hugging Face `CLIPModel` (a preset or any local folder), saved with
    `save_pretrained` beside its tokenizer and image processor."""

    family: Family = "hf"

    def __init__(self, inner: nn.Module, tokenizer: Any, image_processor: Any, name: str):
        super().__init__(inner, tokenizer, image_processor, name)
        self.image_size = _side(image_processor.crop_size)
        self.image_mean, self.image_std = image_processor.image_mean, image_processor.image_std
        self.context_length = inner.config.text_config.max_position_embeddings

    def _token_ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        full = _hf_token_ids(self._tokenizer, texts)
        ids, mask = self._pad_truncate(full)
        return ids, mask, [len(x) for x in full]

    def _pad_truncate(self, full: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """HF ids to one padded batch, cut as HF's truncation cuts (first tokens, then
        end-of-text): one tokenizer pass instead of two."""
        n, eos = self.context_length, self._tokenizer.eos_token_id
        cut = [x if len(x) <= n else [*x[: n - 1], eos] for x in full]
        lengths = np.array([len(x) for x in cut])
        mask = np.arange(lengths.max()) < lengths[:, None]
        ids = np.full(mask.shape, self._tokenizer.pad_token_id, dtype=np.int64)
        ids[mask] = np.fromiter(itertools.chain.from_iterable(cut), np.int64, lengths.sum())
        return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))

    def encode_text_pooled(self, texts: TextBatch) -> torch.Tensor:
        texts = texts.to(self.device)
        return self.inner.text_model(input_ids=texts.ids, attention_mask=texts.attention_mask).pooler_output

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _pooled(self.inner.get_image_features(pixel_values=pixels))

    # inference: the pooled token's features by a shorter path (models/hf_inference.py)
    def _embed_text_batch(self, texts: TextBatch) -> torch.Tensor:
        return self.project_text(text_features(self.inner.text_model, texts.ids.to(self.device)))

    def _embed_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = image_features(self.inner.vision_model, pixels.to(self.device, self.dtype))
        return F.normalize(self.inner.visual_projection(pooled), dim=-1)

    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class + patch tokens of the vision transformer."""
        pixels = pixels.to(self.device, self.dtype)
        return self.inner.vision_model(pixel_values=pixels).last_hidden_state

    def image_tower(self) -> list[nn.Module]:
        return [self.inner.vision_model, self.inner.visual_projection]

    def _patch_size(self) -> int:
        return self.inner.config.vision_config.patch_size

    def _process(self, images: list[Image.Image]) -> torch.Tensor:
        # HF processors run once per batch (much faster than per image)
        return self._image_processor(images=images, return_tensors="pt")["pixel_values"]

    def _save_files(self, folder: Path) -> None:
        self.inner.save_pretrained(folder, safe_serialization=True)
        self._tokenizer.save_pretrained(folder)
        self._image_processor.save_pretrained(folder)


def _hf_token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Each text's ids with the special tokens, untruncated. A fast tokenizer with no
    truncation or padding set gives them from its Rust backend directly: the same ids
    without the wrapper's per-text Python objects (a sixth of the time)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.truncation is not None or backend.padding is not None:
        return tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]
    return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=True)]


def _rows(x: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x[rows]


def _host(x: torch.Tensor) -> torch.Tensor:
    """Inference results on the CPU in float32 (no copy when they already are)."""
    return x.to("cpu", torch.float32)


def _side(size: Any) -> int:
    """Image side from an int, a (h, w) pair, or a processor's size dict / SizeDict."""
    if isinstance(size, (int, float)):
        return int(size)
    if isinstance(size, (tuple, list)):
        return int(size[0])
    for key in ("height", "shortest_edge"):
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if value:
            return int(value)
    raise ValueError(f"no image side in {size!r}")


def _pooled(out: Any) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; older ones a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


# ----------------------------------------------------------------------------------------
# Presets and loading


@cache
def _register_presets() -> None:
    import open_clip

    from finevl.models.towers import register_towers

    register_towers()
    open_clip.add_model_config(PRESETS)


def presets() -> list[str]:
    """finevl's own preset names."""
    return sorted(p.stem for p in PRESETS.glob("*.json"))


@cache
def clip_bpe_tokenizer_parts() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """open_clip's CLIP BPE as (vocab, merges) with HF's special-token names, ids kept at
    49406 (<|startoftext|>) and 49407 (<|endoftext|>)."""
    import open_clip

    tok = open_clip.get_tokenizer("ViT-B-32")
    vocab = dict(tok.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    merges = [pair for pair, _ in sorted(tok.bpe_ranks.items(), key=lambda kv: kv[1])]
    return vocab, merges


def _hf_from_preset(name: str) -> Clip:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    cfg = json.loads((PRESETS / f"{name}.json").read_text())
    cfg.pop("family")
    model = CLIPModel(CLIPConfig(**cfg))
    vocab, merges = clip_bpe_tokenizer_parts()
    tokenizer = CLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=cfg["text_config"]["max_position_embeddings"]
    )
    side = cfg["vision_config"]["image_size"]
    processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    return HfClip(model, tokenizer, processor, name)


def _open_clip_from_name(name: str) -> Clip:
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(name)
    return OpenClip(model, open_clip.get_tokenizer(name), preprocess, name, open_clip.get_model_config(name))


def stage_tower(clip: Clip, needs: str = "a region model") -> nn.Module:
    """The CLIP's timm trunk when it gives four stage maps (ConvNeXt, finevl's conv tower);
    one error line, naming who `needs` it, otherwise."""
    trunk = getattr(getattr(clip.inner, "visual", None), "trunk", None)
    if trunk is None or not hasattr(trunk, "forward_intermediates") or len(trunk.feature_info) != 4:
        raise FinevlError(
            f"{clip.name}: {needs} needs a convolutional timm tower with four stage maps"
            " (a ConvNeXt CLIP or finevl-tiny-conv)"
        )
    return trunk


def res4_level(feature_info: Sequence[dict[str, Any]]) -> int:
    """The stage at 1/16 of the input (Osprey's `res4`), else the deepest."""
    reductions = [f["reduction"] for f in feature_info]
    return reductions.index(16) if 16 in reductions else len(reductions) - 1


def check_safetensors(path: Path) -> None:
    """One clear error for a missing header or corrupt safetensors file, before a loader sees it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises its own error types on bad headers
        raise FinevlError(f"{path}: not a readable safetensors file ({e})") from None


def _load_open_clip_dir(path: Path) -> Clip:
    import open_clip

    weights = path / OPEN_CLIP_WEIGHTS
    if not weights.is_file():
        raise FinevlError(f"{path}: incomplete open_clip checkpoint (no {OPEN_CLIP_WEIGHTS})")
    check_safetensors(weights)
    try:
        cfg = json.loads((path / OPEN_CLIP_CONFIG).read_text())["model_cfg"]
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}")
    except (KeyError, json.JSONDecodeError, RuntimeError, ValueError) as e:
        raise FinevlError(f"{path}: cannot load the open_clip checkpoint ({e})") from None
    return OpenClip(model, open_clip.get_tokenizer(f"local-dir:{path}"), preprocess, str(path), cfg)


def _load_hf_dir(path: Path) -> Clip:
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise FinevlError(f"{path}: incomplete Hugging Face checkpoint (no .safetensors weights)")
    for w in weights:
        check_safetensors(w)
    try:
        model = CLIPModel.from_pretrained(str(path), local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(str(path), local_files_only=True)
        processor = CLIPImageProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise FinevlError(f"{path}: cannot load the Hugging Face CLIP checkpoint ({e})") from None
    return HfClip(model, tokenizer, processor, str(path))


def load_weights(clip: Clip, weights: str | Path) -> None:
    """Load a `.safetensors` state dict, or an open_clip_train `epoch_N.pt` checkpoint
    (read with `weights_only=True`; its DDP `module.` prefix stripped)."""
    weights = Path(weights)
    if not weights.is_file():
        raise FinevlError(f"{weights}: weights file not found")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        check_safetensors(weights)
        state = load_file(str(weights))
    else:
        try:
            ckpt = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a bad or unsafe file
            raise FinevlError(f"{weights}: not a readable checkpoint ({e})") from None
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else {}
        state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        clip.inner.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0] + " " + " ".join(str(e).splitlines()[1:2])
        raise FinevlError(f"{weights}: weights do not fit {clip.name}: {first[:300]}") from None


def load_clip(
    spec: str | Path,
    weights: str | Path | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Clip:
    """A `Clip` from a checkpoint directory (open_clip or Hugging Face layout), a finevl
    preset (`presets()`), or any open_clip architecture name; `weights` optionally loads a
    safetensors or open_clip_train checkpoint into a preset or architecture. `device` and
    `dtype` place it (`models.device.placement` reads the command-line options)."""
    _register_presets()
    path = Path(spec)
    if path.is_dir():
        if (path / OPEN_CLIP_CONFIG).is_file():
            clip = _load_open_clip_dir(path)
        elif (path / "config.json").is_file():
            clip = _load_hf_dir(path)
        else:
            raise FinevlError(f"{path}: not a CLIP checkpoint (no {OPEN_CLIP_CONFIG} or config.json)")
    elif str(spec) in presets() and (PRESETS / f"{spec}.json").read_text().find('"family": "hf"') >= 0:
        clip = _hf_from_preset(str(spec))
    else:
        import open_clip

        if str(spec) not in open_clip.list_models():
            where = "model directory not found" if ("/" in str(spec) or path.suffix) else "unknown model"
            raise FinevlError(
                f"{spec}: {where} (a checkpoint directory, a preset: {', '.join(presets())}, "
                "or an open_clip architecture)"
            )
        clip = _open_clip_from_name(str(spec))
    if weights is not None:
        load_weights(clip, weights)
    if device is not None or dtype is not None:
        clip.to(device=device, dtype=dtype)
    return clip.eval()


def load_placed_clip(
    spec: str | Path, weights: str | Path | None = None, device: str = "auto", dtype: str = "auto"
) -> Clip:
    """`load_clip` placed by a command's `--device` and `--dtype` values."""
    return load_clip(spec, weights, *placement(device, dtype))
