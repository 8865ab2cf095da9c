"""`finevl stic dpo`: STIC stage 1 training, TRL's `DPOTrainer` (its vision-language path)
with a LoRA adapter on the language model, loss `["sigmoid", "sft"]` weighted `[1, sft_weight]`.

Upstream's loss is sigmoid DPO minus the *summed* log-probability of the preferred answer over
1024; TRL's "sft" term is a token mean over the batch, so `sft_weight` ~ answer length / 1024
matches it only approximately. `dpo_sft_loss` re-derives TRL's configuration from per-token
log-probabilities and `upstream_loss` writes upstream's formula, so the two can be compared on
one batch (tests, `benchmarks/dpo_speed.py`).
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from finevl.data.files import claim_output, make_own_folder
from finevl.data.images import ImageCache
from finevl.data.jsonio import write_json_atomic
from finevl.errors import FinevlError
from finevl.models.lvlm import Lvlm, assistant_message, load_lvlm, user_message
from finevl.train.stic.config import DpoConfig
from finevl.train.stic.prefs import Preference, read_preferences
from finevl.train.stic.sft import lora_config

UPSTREAM_NORM = 1024  # upstream divides the summed chosen log-probability by this


def dpo_rows(records: list[Preference], images: ImageCache, drop_image: bool = False) -> list[dict[str, Any]]:
    """TRL conversational preference rows; without the image (and its token) when `drop_image`,
    as upstream's released code trains."""
    rows = []
    for r in records:
        question = r.prompt.replace("<image>", "").strip()
        row = {
            "prompt": user_message(question, image=not drop_image),
            "chosen": assistant_message(r.chosen),
            "rejected": assistant_message(r.rejected),
        }
        if not drop_image:
            row["images"] = [images(r.image)]
        rows.append(row)
    return rows


def dpo_trainer(lvlm: Lvlm, rows: list[dict[str, Any]], cfg: DpoConfig, out: Path) -> Any:
    """A TRL `DPOTrainer` on the rows with a fresh LoRA adapter (the reference model is the
    base with the adapter disabled, so no copy is held)."""
    from datasets import Dataset
    from trl import DPOConfig as TrlDpoConfig
    from trl import DPOTrainer

    if cfg.precision == "fp16" and not torch.cuda.is_available():
        raise FinevlError("--precision fp16 needs a GPU; on the CPU use bf16 or fp32")
    weights = [1.0, cfg.sft_weight] if cfg.sft_weight else [1.0]
    args = TrlDpoConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        beta=cfg.beta,
        loss_type=["sigmoid", "sft"][: len(weights)],
        loss_weights=weights,
        max_length=None,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        seed=cfg.seed,
        disable_tqdm=True,
    )
    return DPOTrainer(
        model=lvlm.model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=lvlm.processor,
        peft_config=lora_config(cfg),
    )


def _progress_callback(progress: Callable[[int], None]) -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress(1)

    return Progress()


def dpo_steps(n: int, cfg: DpoConfig) -> int:
    """Optimizer steps of one run over `n` preference records."""
    return math.ceil(math.ceil(n / cfg.batch_size) * cfg.epochs)


def train_dpo(cfg: DpoConfig, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Stage 1: DPO + SFT regulariser with LoRA. Writes `out/adapter` and, with `merge`,
    `out/model` (the merged model), the TRL log as `out/log.jsonl` and `out/summary.json`."""
    out = Path(cfg.out)
    if out.is_dir() and any(out.iterdir()):
        raise FinevlError(f"{out}: run folder is not empty")
    claim_output(out, folder=True)
    data = Path(cfg.data or Path(cfg.prefs).parent)
    records, dropped = read_preferences(cfg.prefs, data)
    if not records:
        raise FinevlError(f"{cfg.prefs}: no usable preference record (filtered: {dropped})")
    lvlm = load_lvlm(cfg.model)
    make_own_folder(out)
    torch.manual_seed(cfg.seed)
    trainer = dpo_trainer(lvlm, dpo_rows(records, ImageCache(data), cfg.drop_image), cfg, out)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # stdout carries the JSON result only
    if progress:
        trainer.add_callback(_progress_callback(progress))
    check = loss_check(trainer, cfg)
    began = time.time()
    result = trainer.train()
    seconds = time.time() - began
    trainer.model.save_pretrained(str(out / "adapter"))
    history = trainer.state.log_history
    with (out / "log.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(h) + "\n" for h in history)
    if cfg.merge:
        Lvlm(trainer.model.merge_and_unload(), lvlm.processor, lvlm.name).save(out / "model")
    last = [h for h in history if "loss" in h]
    summary = {
        "run": str(out),
        "model": str(out / "model") if cfg.merge else None,
        "adapter": str(out / "adapter"),
        "records": len(records),
        "filtered": dropped,
        "steps": result.global_step,
        "steps_per_second": result.global_step / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": result.training_loss,
        "loss_check": check,
        "last": last[-1] if last else {},
    }
    write_json_atomic(out / "summary.json", summary)
    return summary


def loss_check(trainer: Any, cfg: DpoConfig) -> dict[str, float]:
    """On the first batch, before training: TRL's loss, ours re-derived (equal up to float
    error), upstream's formula, and the gap between TRL's configuration and upstream's."""
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    was_training = model.training
    model.eval()
    with torch.no_grad():
        trl = float(trainer.compute_loss(model, batch))
        policy, mask = completion_logps(model, batch)
        with model.disable_adapter():
            reference, _ = completion_logps(model, batch)
    model.train(was_training)
    ours = float(dpo_sft_loss(policy, reference, mask, cfg.beta, cfg.sft_weight))
    upstream = float(upstream_loss(policy, reference, cfg.beta))
    return {"trl": trl, "ours": ours, "upstream": upstream, "trl_minus_upstream": trl - upstream}


# -- the loss, re-derived from per-token log-probabilities ---------------------------------
def completion_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token log-probabilities of the next token, completion mask), both (2B, L-1), from
    a TRL-collated DPO batch ([chosen; rejected] rows)."""
    keys = ("input_ids", "attention_mask", "pixel_values", "image_sizes")
    logits = model(**{k: batch[k] for k in keys if k in batch}, use_cache=False).logits[:, :-1].float()
    target = batch["input_ids"][:, 1:]
    logps = torch.gather(F.log_softmax(logits, -1), 2, target.unsqueeze(-1)).squeeze(-1)
    mask = batch["completion_mask"][:, 1:].float()
    return logps * mask, mask


def dpo_sft_loss(
    policy: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, beta: float, sft_weight: float
) -> torch.Tensor:
    """TRL's `["sigmoid", "sft"]` with weights `[1, sft_weight]`: mean sigmoid DPO over pairs
    plus the token-mean negative log-likelihood of the preferred answers."""
    logratio = policy.sum(1) - reference.sum(1)
    chosen, rejected = logratio.chunk(2)
    sigmoid = -F.logsigmoid(beta * (chosen - rejected)).mean()
    chosen_logps, chosen_mask = policy.chunk(2)[0], mask.chunk(2)[0]
    return sigmoid + sft_weight * (-chosen_logps.sum() / chosen_mask.sum())


def upstream_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> torch.Tensor:
    """STIC's released loss: sigmoid DPO minus the summed preferred log-probability / 1024."""
    logratio = policy.sum(1) - reference.sum(1)
    chosen, rejected = logratio.chunk(2)
    chosen_sum = policy.sum(1).chunk(2)[0]
    return (-F.logsigmoid(beta * (chosen - rejected)) - chosen_sum / UPSTREAM_NORM).mean()
