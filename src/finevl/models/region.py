"""Osprey-style mask-aware region models (seed 003).

A frozen convolutional CLIP image tower (open_clip, through timm: upstream's ConvNeXt, or
finevl's conv tower) gives four stage maps. The one at 1/16 of the input (upstream's `res4`,
a ConvNeXt's third) is flattened into image tokens and projected to the language
model's width (`<image>`). Each region the user points at, a binary mask, becomes two
tokens: the **mask token**, the tower's features averaged inside the mask on every stage,
projected per level, summed and passed through an MLP; and the **spatial token**, the mask
itself resized, flattened and passed through a 3-layer MLP. In the text a region is written
`<mask><pos>` and the two placeholders take those two embeddings. The language model is a
Hugging Face causal LM (a Llama trained from scratch here).

A folder holds `region_config.json`, `region.safetensors` (projector and extractor),
`tower/` (the CLIP, open_clip layout), `lm/` and `tokenizer/` (`save_pretrained`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from finevl.data.files import replace_dir, temp_sibling
from finevl.data.images import model_array
from finevl.data.regions import MASK_PAIR, MASK_TOKEN, POS_TOKEN
from finevl.errors import FinevlError
from finevl.models.auto import Pretrained
from finevl.models.clip import Clip, check_safetensors, load_clip, res4_level, stage_tower
from finevl.models.lvlm import (
    CHAT_TEMPLATE,
    IMAGE_TOKEN,
    answer_labels,
    generation_kwargs,
    llama_config,
    user_message,
)

REGION = MASK_PAIR  # how a region is written in a prompt
REGION_INPUTS = ("mask", "box")
CONFIG_FILE, WEIGHTS_FILE = "region_config.json", "region.safetensors"
MAX_POSITIONS = 2048  # 1,024 image tokens at 512 px (upstream) + the text


@dataclass
class RegionModelConfig:
    """Architecture of a region model. Upstream (Osprey-7B): ConvNeXt-Large at 512 px,
    image tokens from stage 3, per-level projections to 1024, spatial mask 112 x 112."""

    image_size: int = field(default=128, metadata={"help": "Tower input side (upstream: 512)."})
    image_level: int = field(
        default=-1, metadata={"help": "Stage whose map gives image tokens; -1: the one at 1/16 (res4)."}
    )
    mask_dim: int = field(default=256, metadata={"help": "Width of the per-level projections (1024)."})
    spatial_size: int = field(
        default=112, metadata={"help": "Side of the spatial-token mask (upstream: 112)."}
    )
    region_input: str = field(default="mask", metadata={"help": "Pool inside the mask, or its box."})
    spatial_token: bool = field(
        default=True, metadata={"help": "Add the spatial token after the mask token."}
    )

    def __post_init__(self) -> None:
        if self.region_input not in REGION_INPUTS:
            raise FinevlError(f"--region-input must be mask or box, not {self.region_input!r}")
        if not -1 <= self.image_level <= 3 or min(self.image_size, self.mask_dim, self.spatial_size) < 1:
            raise FinevlError("--image-level must be -1..3; sizes must be positive")


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with GELU between them (LLaVA's `mlpNx_gelu`)."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers += [nn.GELU()] if k else []
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def boxes_of(masks: torch.Tensor) -> torch.Tensor:
    """Each mask replaced by its bounding box, filled (the box-feature ablation)."""
    rows, cols = masks.any(2), masks.any(1)
    down, across = (
        torch.arange(masks.shape[1], device=masks.device),
        torch.arange(masks.shape[2], device=masks.device),
    )
    out = torch.zeros_like(masks)
    for k in range(len(masks)):
        r, c = down[rows[k]], across[cols[k]]
        out[k, r.min() : r.max() + 1, c.min() : c.max() + 1] = True
    return out


def mask_pool(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean feature inside each mask: (R, C, h, w) maps, (R, H, W) masks -> (R, C). The mask
    is resized bilinearly to the map and binarised again (> 0, as upstream); a mask that
    vanishes at a coarse level pools to zeros."""
    small = F.interpolate(masks[:, None].float(), size=features.shape[-2:], mode="bilinear") > 0
    weights = (small.float() / (small.sum((-1, -2), keepdim=True) + 1e-8)).to(features.dtype)
    return torch.einsum("rchw,rqhw->rc", features, weights)


class MaskExtractor(nn.Module):
    """Region masks -> [mask token, spatial token], each of the language model's width."""

    def __init__(self, channels: Sequence[int], config: RegionModelConfig, width: int):
        super().__init__()
        self.config = config
        self.level_proj = nn.ModuleList(nn.Linear(c, config.mask_dim) for c in channels)
        self.mask_mlp = mlp([config.mask_dim, width, width])
        self.spatial_mlp = mlp([config.spatial_size**2, width, width, width])

    def forward(self, maps: Sequence[torch.Tensor], masks: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        """(R, 2 or 1, width) region tokens of masks (R, H, W) on images `owner` (R,)."""
        if self.config.region_input == "box":
            masks = boxes_of(masks)
        pooled = sum(proj(mask_pool(m[owner], masks)) for proj, m in zip(self.level_proj, maps, strict=True))
        tokens = [self.mask_mlp(pooled)]
        if self.config.spatial_token:
            side = self.config.spatial_size
            small = F.interpolate(masks[:, None].float(), size=(side, side), mode="bilinear")
            tokens.append(self.spatial_mlp(small.flatten(1).to(pooled.dtype)))
        return torch.stack(tokens, 1)


@dataclass
class RegionPrompt:
    """One example: an image, its region masks (in `<mask><pos>` order), a question. With
    no image and no question, the answer is plain text (language-model lessons)."""

    image: Image.Image | None
    masks: list[np.ndarray]
    question: str


def check_masks(masks: Sequence[np.ndarray], size: tuple[int, int], question: str) -> None:
    """One clear error for masks a region model cannot use."""
    if IMAGE_TOKEN in question:
        raise FinevlError(f"the question must not hold {IMAGE_TOKEN}: the image goes first by itself")
    wanted = question.count(REGION)
    if question.count(MASK_TOKEN) != wanted or question.count(POS_TOKEN) != wanted:
        raise FinevlError(f"{MASK_TOKEN} and {POS_TOKEN} must come in pairs written {REGION}")
    if wanted != len(masks):
        raise FinevlError(f"the prompt has {wanted} {REGION} regions but {len(masks)} masks were given")
    for k, m in enumerate(masks):
        if m.shape != (size[1], size[0]):
            raise FinevlError(f"mask {k + 1} is {m.shape[1]}x{m.shape[0]}, the image {size[0]}x{size[1]}")
        if not m.any():
            raise FinevlError(f"mask {k + 1} is empty")
        if m.all():
            raise FinevlError(f"mask {k + 1} covers the whole image: it points at no region")


class RegionLvlm(Pretrained, nn.Module):
    """A frozen convolutional CLIP tower, a projector, a mask extractor and a causal LM."""

    def __init__(self, clip: Clip, lm: Any, tokenizer: Any, config: RegionModelConfig):
        super().__init__()
        trunk = stage_tower(clip)
        if config.image_level < 0:
            config = replace(config, image_level=res4_level(trunk.feature_info))
        self.clip, self.lm, self.tokenizer, self.config = clip, lm, tokenizer, config
        self.clip.requires_grad_(False)
        channels = [f["num_chs"] for f in trunk.feature_info]
        width = lm.config.hidden_size
        self.projector = mlp([channels[config.image_level], width, width])
        self.extractor = MaskExtractor(channels, config, width)
        self.image_tokens = (config.image_size // trunk.feature_info[config.image_level]["reduction"]) ** 2
        self.ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN)}

    # -- inputs ------------------------------------------------------------------------
    def prompt(self, question: str) -> str:
        """The chat-formatted prompt, `<image>` expanded to one placeholder per image token
        (an empty question: no prompt, the answer is plain text)."""
        if not question:
            return ""
        text = self.tokenizer.apply_chat_template(
            user_message(question), add_generation_prompt=True, tokenize=False, chat_template=CHAT_TEMPLATE
        )
        return text.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.image_tokens)

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The tower's input: each whole image resized to a square (its masks stay aligned)."""
        side = self.config.image_size
        arrays = [model_array(im.convert("RGB"), side, crop=False) for im in images]
        return self.clip.normalize_pixels(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2))

    def batch(
        self,
        examples: Sequence[RegionPrompt],
        answers: Sequence[str] | None = None,
        padding_side: str = "left",
    ) -> dict[str, Any]:
        """Token ids, attention mask, pixels and masks of a batch; with `answers` (right
        padding only), each answer and EOS are appended and `labels` mark only their tokens."""
        if answers is not None and padding_side != "right":
            raise ValueError("answer labels need right padding")
        with_image = [ex.image is not None for ex in examples]
        if any(with_image) and not all(with_image):
            raise FinevlError("a batch mixes rows with and without an image")
        for ex in examples:
            if ex.image is not None:
                check_masks(ex.masks, ex.image.size, ex.question)
        prompts = [self.prompt(ex.question) for ex in examples]
        texts = (
            prompts
            if answers is None
            else [f"{p} {a}{self.tokenizer.eos_token}" for p, a in zip(prompts, answers, strict=True)]
        )
        self.tokenizer.padding_side = padding_side
        enc = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        out: dict[str, Any] = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "pixel_values": self.pixels([ex.image for ex in examples]) if all(with_image) else None,
            "masks": [self._masks(ex.masks) if ex.masks else None for ex in examples],
        }
        if answers is not None:
            lengths = torch.tensor(
                [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
            )
            out["labels"] = answer_labels(enc["input_ids"], enc["attention_mask"], lengths)
        return self._place(out)

    def _place(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch on the model's device, pixels in the tower's dtype."""
        device = self.lm.device
        placed = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        if batch["pixel_values"] is not None:
            placed["pixel_values"] = batch["pixel_values"].to(device, self.clip.dtype)
        placed["masks"] = [None if m is None else m.to(device) for m in batch["masks"]]
        return placed

    def _masks(self, masks: Sequence[np.ndarray]) -> torch.Tensor:
        """Masks resized (nearest) to the tower's input, as the image is: any image size."""
        side = self.config.image_size
        resized = [np.asarray(Image.fromarray(m).resize((side, side), Image.NEAREST)) for m in masks]
        return torch.from_numpy(np.stack(resized))

    # -- model -------------------------------------------------------------------------
    @torch.no_grad()
    def stage_maps(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """The tower's four stage maps (frozen in every stage, so no gradient)."""
        self.clip.eval()
        return self.clip.inner.visual.trunk.forward_intermediates(pixels, intermediates_only=True)

    def embed(self, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings with `<image>` and `<mask>`/`<pos>` placeholders filled in."""
        ids = batch["input_ids"]
        embeds = self.lm.get_input_embeddings()(ids)
        if batch["pixel_values"] is None:
            return embeds
        maps = self.stage_maps(batch["pixel_values"])
        image = self.projector(maps[self.config.image_level].flatten(2).transpose(1, 2))
        embeds = embeds.masked_scatter((ids == self.ids[IMAGE_TOKEN])[..., None], image.to(embeds.dtype))
        owner = [
            torch.full((len(m),), k, device=ids.device) for k, m in enumerate(batch["masks"]) if m is not None
        ]
        if owner:
            masks = torch.cat([m for m in batch["masks"] if m is not None])
            regions = self.extractor(maps, masks, torch.cat(owner))
            embeds = embeds.masked_scatter(
                (ids == self.ids[MASK_TOKEN])[..., None], regions[:, 0].to(embeds.dtype)
            )
            if self.config.spatial_token:
                embeds = embeds.masked_scatter(
                    (ids == self.ids[POS_TOKEN])[..., None], regions[:, 1].to(embeds.dtype)
                )
        return embeds

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Mean cross-entropy over the answer tokens of a batch from `batch(..., answers)`."""
        return self.lm(
            inputs_embeds=self.embed(batch), attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss

    @torch.no_grad()
    def generate(
        self,
        examples: Sequence[RegionPrompt],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        batch_size: int = 32,
        seed: int = 0,
        progress: Any = None,
    ) -> list[str]:
        """Answers to each example's question about its regions (greedy when temperature is 0)."""
        torch.manual_seed(seed)
        self.eval()
        out: list[str] = []
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = self.batch(chunk)
            ids = self.lm.generate(
                inputs_embeds=self.embed(batch),
                attention_mask=batch["attention_mask"],
                **generation_kwargs(self.tokenizer, max_new_tokens, temperature),
            )
            out += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
            if progress is not None:
                progress(len(chunk))
        return out

    # -- parts and files -----------------------------------------------------------------
    def set_trainable(self, parts: Sequence[str]) -> None:
        """Freeze everything, then unfreeze `parts` (of projector, extractor, lm); the
        tower stays frozen in every stage, as upstream."""
        self.requires_grad_(False)
        for part in parts:
            getattr(self, part).requires_grad_(True)

    def save(self, out_dir: str | Path) -> Path:
        """The model folder (see the module docstring), written atomically."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        tmp = temp_sibling(out)
        (tmp / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=1), encoding="utf-8")
        own = {f"projector.{k}": v for k, v in self.projector.state_dict().items()}
        own |= {f"extractor.{k}": v for k, v in self.extractor.state_dict().items()}
        save_file({k: v.contiguous() for k, v in own.items()}, tmp / WEIGHTS_FILE)
        self.clip.save(tmp / "tower")
        self.lm.save_pretrained(tmp / "lm", safe_serialization=True)
        self.tokenizer.save_pretrained(tmp / "tokenizer")
        replace_dir(tmp, out)
        return out


def region_tokenizer(tokenizer: Any) -> Any:
    """The word tokenizer with `<mask>` and `<pos>` added as special tokens."""
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN, MASK_TOKEN, POS_TOKEN]})
    return tokenizer


def build_region_model(
    clip: str | Clip, tokenizer: Any, config: RegionModelConfig | None = None, lm: str = "tiny", seed: int = 0
) -> RegionLvlm:
    """A new region model: the CLIP's convolutional tower, a fresh projector and extractor, and a
    fresh Llama of preset `lm` over `tokenizer`."""
    from transformers import LlamaForCausalLM

    config_lm = llama_config(region_tokenizer(tokenizer), lm, MAX_POSITIONS)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config_lm)
    clip = load_clip(clip) if not isinstance(clip, Clip) else clip
    return RegionLvlm(clip, model, tokenizer, config or RegionModelConfig())


def load_region_model(
    path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> RegionLvlm:
    """A region model folder written by `RegionLvlm.save` (safetensors only, local files),
    placed on `device` in `dtype` when given."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from finevl.data.tokenizer import load_tokenizer

    path = Path(path)
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE, "tower", "lm", "tokenizer") if not (path / f).exists()]
    if missing:
        raise FinevlError(f"{path}: not a region model folder (no {', '.join(missing)})")
    check_safetensors(path / WEIGHTS_FILE)
    try:
        config = RegionModelConfig(**json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")))
        lm = AutoModelForCausalLM.from_pretrained(
            str(path / "lm"), local_files_only=True, use_safetensors=True
        )
        model = RegionLvlm(load_clip(path / "tower"), lm, load_tokenizer(path / "tokenizer"), config)
        own = load_file(path / WEIGHTS_FILE)
        model.projector.load_state_dict({k[10:]: v for k, v in own.items() if k.startswith("projector.")})
        model.extractor.load_state_dict({k[10:]: v for k, v in own.items() if k.startswith("extractor.")})
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise FinevlError(f"{path}: cannot load the region model ({first[:300]})") from None
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model.eval()
