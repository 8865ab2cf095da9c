"""LLaVA-style vision-language models (seed 001).

One `Lvlm` wraps a Hugging Face image-text-to-text model and its processor: either a
`LlavaForConditionalGeneration` built here from a finevl CLIP's image tower, a two-layer
projector and a small Llama trained from scratch on world text (`build_lvlm`), or any local
LLaVA / LLaVA-NeXT checkpoint directory (`load_lvlm`). Prompts go through the processor's
chat template, so `<image>` handling is the checkpoint's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from finevl.data.files import save_pretrained_atomic
from finevl.errors import FinevlError
from finevl.models.auto import Pretrained
from finevl.models.clip import Clip, check_safetensors, res4_level, stage_tower

IMAGE_TOKEN = "<image>"
IGNORE_INDEX = -100

# LLaVA-1.5's conversation shape ("USER: <image>\n... ASSISTANT: ...</s>"), written for a
# word tokenizer: the role words and `</s>` are ordinary entries of its vocabulary.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if m['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

CHAT_WORDS = "USER: ASSISTANT: </s>"  # the template's own words, for a word tokenizer's corpus

# Llama sizes for a language model trained from scratch here.
LM_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4},
    "small": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 6, "num_attention_heads": 8},
}


def user_message(question: str, image: bool = True) -> list[dict[str, Any]]:
    """A one-turn user message in the chat-template format (image first, as LLaVA)."""
    content: list[dict[str, str]] = [{"type": "image"}] if image else []
    return [{"role": "user", "content": [*content, {"type": "text", "text": question}]}]


def assistant_message(answer: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def answer_labels(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: torch.Tensor
) -> torch.Tensor:
    """Labels of right-padded rows whose first `prompt_len` tokens are the prompt: only the
    answer tokens count (padding and prompt set to the ignore index)."""
    labels = input_ids.clone()
    labels[attention_mask == 0] = IGNORE_INDEX
    labels[torch.arange(labels.shape[1]) < prompt_len[:, None]] = IGNORE_INDEX
    return labels


def generation_kwargs(tokenizer: Any, max_new_tokens: int, temperature: float) -> dict[str, Any]:
    """`generate` settings: greedy when temperature is 0, sampled otherwise; the
    tokenizer's pad and end tokens."""
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    return {
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        **sampling,
    }


class Lvlm(Pretrained):
    """A vision-language model and its processor: chat prompts, batched generation,
    supervised batches (loss on the answer tokens only), atomic save."""

    def __init__(self, model: Any, processor: Any, name: str = ""):
        self.model = model
        self.processor = processor
        self.name = name
        tok = processor.tokenizer
        if tok.pad_token is None:  # Llama/Mistral tokenizers ship without one
            tok.pad_token = tok.eos_token

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def prompt(self, question: str, image: bool = True) -> str:
        """The chat-formatted prompt of one question, ending where the answer starts."""
        return self.processor.apply_chat_template(user_message(question, image), add_generation_prompt=True)

    def inputs(
        self,
        images: Sequence[Image.Image | None],
        prompts: Sequence[str],
        answers: Sequence[str] | None = None,
        padding_side: str = "left",
    ) -> dict[str, torch.Tensor]:
        """Processor inputs for a batch of formatted prompts (with their images; rows without
        an image are text only). With `answers`, each answer and EOS are appended and
        `labels` mark only their tokens (right padding: the prompt leads each row)."""
        if answers is not None and padding_side != "right":
            raise ValueError("answer labels need right padding")
        texts = list(prompts)
        if answers is not None:
            eos = self.tokenizer.eos_token
            texts = [f"{p} {a}{eos}" for p, a in zip(prompts, answers, strict=True)]
        pics = [im for im in images if im is not None]
        if pics and len(pics) != len(texts):
            raise FinevlError("a batch mixes rows with and without an image")
        self.tokenizer.padding_side = padding_side
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if pics:
            kwargs["images"] = pics
        batch = dict(self.processor(**kwargs))
        if answers is not None:
            batch["labels"] = self._answer_labels(batch, prompts)
        return batch

    def _answer_labels(self, batch: dict[str, torch.Tensor], prompts: Sequence[str]) -> torch.Tensor:
        # A prompt's length in the batch: its own tokens, plus the placeholders the processor
        # added when it expanded each `<image>` (all of them sit in the prompt). Counting
        # them spares preprocessing every image a second time.
        ids = self.tokenizer(list(prompts))["input_ids"]
        image_id = getattr(self.processor, "image_token_id", None)
        expanded = (batch["input_ids"] == image_id).sum(1) if image_id is not None else 0
        written = torch.tensor([row.count(image_id) for row in ids])
        prompt_len = torch.tensor([len(row) for row in ids]) + expanded - written
        return answer_labels(batch["input_ids"], batch["attention_mask"], prompt_len)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over the answer tokens of a batch from `inputs(..., answers)`."""
        device = self.model.device
        return self.model(**{k: v.to(device) for k, v in batch.items()}).loss

    @torch.no_grad()
    def generate(
        self,
        images: Sequence[Image.Image | None],
        questions: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        batch_size: int = 32,
        seed: int = 0,
        progress: Any = None,
    ) -> list[str]:
        """Answers to `questions` about `images` (None: no image), greedy when temperature is
        0, sampled otherwise (seeded); left-padded batches."""
        torch.manual_seed(seed)
        self.model.eval()
        out: list[str] = []
        for start in range(0, len(questions), batch_size):
            ims = images[start : start + batch_size]
            prompts = [self.prompt(q, im is not None) for q, im in zip(questions[start:], ims, strict=False)]
            batch = {k: v.to(self.model.device) for k, v in self.inputs(ims, prompts).items()}
            ids = self.model.generate(
                **batch, **generation_kwargs(self.tokenizer, max_new_tokens, temperature)
            )
            new = ids[:, batch["input_ids"].shape[1] :]
            out += [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
            if progress is not None:
                progress(len(ims))
        return out

    def save(self, out_dir: str | Path) -> Path:
        """`save_pretrained` of model and processor, written atomically."""
        return save_pretrained_atomic(out_dir, self.model, self.processor)


def _open_clip_vision_to_hf(visual: torch.nn.Module, image_size: int) -> tuple[Any, dict[str, torch.Tensor]]:
    """An open_clip `VisionTransformer` as a Hugging Face `CLIPVisionConfig` and state dict
    of `CLIPVisionModel.vision_model` (same function: tested against open_clip's tokens)."""
    from transformers import CLIPVisionConfig

    name = type(visual).__name__
    block = visual.transformer.resblocks[0] if hasattr(visual, "transformer") else None
    if name != "VisionTransformer" or block is None or not isinstance(block.ls_1, torch.nn.Identity):
        raise FinevlError(
            "an LLaVA vision tower needs a ViT CLIP or a conv tower with stage maps;"
            f" this one has a {name} image tower"
        )
    width = visual.conv1.out_channels
    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=block.mlp.c_fc.out_features,
        num_hidden_layers=len(visual.transformer.resblocks),
        num_attention_heads=block.attn.num_heads,
        image_size=image_size,
        patch_size=visual.conv1.kernel_size[0],
        hidden_act="quick_gelu" if "QuickGELU" in type(block.mlp.gelu).__name__ else "gelu",
        layer_norm_eps=block.ln_1.eps,
    )
    state = {
        "embeddings.class_embedding": visual.class_embedding,
        "embeddings.patch_embedding.weight": visual.conv1.weight,
        "embeddings.position_embedding.weight": visual.positional_embedding,
        "pre_layrnorm.weight": visual.ln_pre.weight,
        "pre_layrnorm.bias": visual.ln_pre.bias,
        "post_layernorm.weight": visual.ln_post.weight,
        "post_layernorm.bias": visual.ln_post.bias,
    }
    for i, blk in enumerate(visual.transformer.resblocks):
        pre = f"encoder.layers.{i}."
        for proj, w, b in zip(
            ("q_proj", "k_proj", "v_proj"),
            blk.attn.in_proj_weight.chunk(3),
            blk.attn.in_proj_bias.chunk(3),
            strict=True,
        ):
            state[pre + f"self_attn.{proj}.weight"], state[pre + f"self_attn.{proj}.bias"] = w, b
        pairs = {
            "self_attn.out_proj": blk.attn.out_proj,
            "layer_norm1": blk.ln_1,
            "layer_norm2": blk.ln_2,
            "mlp.fc1": blk.mlp.c_fc,
            "mlp.fc2": blk.mlp.c_proj,
        }
        for hf, mod in pairs.items():
            state[pre + hf + ".weight"], state[pre + hf + ".bias"] = mod.weight, mod.bias
    return config, {k: v.detach().clone() for k, v in state.items()}


@dataclass
class VisionTower:
    """What a LLaVA needs of a CLIP's image side: the vision config, the vision model's
    state dict, the image processor, and how its features become image tokens."""

    config: Any
    state: dict[str, torch.Tensor]
    processor: Any
    feature_layer: int  # LLaVA's `vision_feature_layer`
    patch_size: int  # pixels per image token a side
    extra_tokens: int  # tokens beyond the grid (a ViT's CLS)


def clip_vision_tower(clip: Clip, stage: int | None = None) -> VisionTower:
    """The LLaVA vision tower of a finevl CLIP: a ViT's tokens (open_clip ViTs converted to
    `CLIPVisionModel`, HF CLIPs as they are), or a conv tower's stage-map cells
    (`models/cells.py`; `stage`, default Osprey's 1/16 map: at 64 px it beat the finer 1/8
    map in VQA, docs/stic.md)."""
    from transformers import CLIPImageProcessor

    side = clip.image_size
    processor = CLIPImageProcessor(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_mean=list(clip.image_mean),
        image_std=list(clip.image_std),
    )
    if clip.family == "hf":
        config = clip.inner.config.vision_config
        return VisionTower(config, clip.inner.vision_model.state_dict(), processor, -1, config.patch_size, 1)
    visual = clip.inner.visual
    if hasattr(visual, "trunk"):
        return _cell_tower(clip, processor, stage)
    config, state = _open_clip_vision_to_hf(visual, side)
    return VisionTower(config, state, processor, -1, config.patch_size, 1)


def _cell_tower(clip: Clip, processor: Any, stage: int | None) -> VisionTower:
    from finevl.models.cells import CellTowerConfig, register_cell_tower

    trunk = stage_tower(clip, "an LLaVA vision tower")
    stages = len(trunk.feature_info)
    stage = res4_level(trunk.feature_info) if stage is None or stage < 0 else stage
    if stage >= stages:
        raise FinevlError(f"vision stage {stage}: this tower has stages 0-{stages - 1}")
    info = trunk.feature_info[stage]
    name = clip.inner_config["vision_cfg"]["timm_model_name"]
    register_cell_tower()
    config = CellTowerConfig(
        timm_model_name=name,
        image_size=clip.image_size,
        feature_stage=stage,
        hidden_size=info["num_chs"],
        patch_size=info["reduction"],
    )
    state = {f"trunk.{k}": v.detach().clone() for k, v in trunk.state_dict().items()}
    return VisionTower(config, state, processor, stage, info["reduction"], 0)


def llama_config(tokenizer: Any, lm: str, max_positions: int) -> Any:
    """A `LlamaConfig` of preset `lm` over a word tokenizer (vocabulary and special ids)."""
    from transformers import LlamaConfig

    if lm not in LM_PRESETS:
        raise FinevlError(f"unknown language-model preset {lm!r} (have {', '.join(LM_PRESETS)})")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        num_key_value_heads=LM_PRESETS[lm]["num_attention_heads"],
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **LM_PRESETS[lm],
    )


def build_lvlm(
    clip: Clip, tokenizer: Any, lm: str = "tiny", seed: int = 0, vision_stage: int | None = None
) -> Lvlm:
    """A new LLaVA: the CLIP's image tower (weights copied; a ViT's CLS + patch features of
    the last layer, or a conv tower's cells of stage `vision_stage`), a fresh two-layer GELU
    projector and a fresh Llama of preset `lm` over the word `tokenizer` (which must know
    `<image>`)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_id is None or image_id == tokenizer.unk_token_id:
        raise FinevlError(f"the tokenizer has no {IMAGE_TOKEN} token")
    tower = clip_vision_tower(clip, vision_stage)
    text_config = llama_config(tokenizer, lm, tokenizer.model_max_length)
    config = LlavaConfig(
        vision_config=tower.config,
        text_config=text_config,
        image_token_index=image_id,
        vision_feature_select_strategy="full",
        vision_feature_layer=tower.feature_layer,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(tower.state)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tokenizer.chat_template = CHAT_TEMPLATE
    processor = LlavaProcessor(
        image_processor=tower.processor,
        tokenizer=tokenizer,
        patch_size=tower.patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=tower.extra_tokens,  # a ViT's CLS feature
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )
    return Lvlm(model.eval(), processor, f"llava({clip.name}, {lm})")


def _check_dir(path: Path) -> None:
    if not path.is_dir():
        raise FinevlError(f"{path}: model directory not found")
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        raise FinevlError(f"{path}: a LoRA adapter, not a model (load it with its base: --merge when saving)")
    missing = [f for f in ("config.json",) if not (path / f).is_file()]
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        missing.append("*.safetensors weights")
    if not ((path / "tokenizer.json").is_file() or (path / "tokenizer.model").is_file()):
        missing.append("tokenizer.json")
    if not any((path / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
        missing.append("preprocessor_config.json")
    if missing:
        raise FinevlError(f"{path}: incomplete model directory (no {', '.join(missing)})")
    for w in weights:
        check_safetensors(w)


def _device_map(device: torch.device | None) -> str | dict[str, Any] | None:
    if device is None or device.type == "cpu":
        return None
    return "auto" if device.index is None else {"": device.index}


def load_lvlm(path: str | Path, dtype: torch.dtype | None = None, device: torch.device | None = None) -> Lvlm:
    """A local LLaVA-family checkpoint directory (finevl's, or e.g. llava-hf's LLaVA-NeXT):
    `from_pretrained` with local files only, safetensors only, no remote code. Loaded in
    `dtype` straight onto `device`; a GPU without an index (`--device cuda`/`auto`) gets
    `device_map="auto"`, so a 7B model is spread over every GPU there is."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from finevl.models.cells import register_cell_tower

    path = Path(path)
    _check_dir(path)
    register_cell_tower()  # a LLaVA on a finevl conv tower names `finevl_cells`
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            str(path),
            local_files_only=True,
            use_safetensors=True,
            dtype=dtype,
            device_map=_device_map(device),
        )
        processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FinevlError(f"{path}: cannot load the vision-language model ({first[:300]})") from None
    return Lvlm(model.eval(), processor, str(path))
