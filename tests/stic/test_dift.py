"""Stage 2 and the shared supervised loop: infused prompts, and LoRA checkpoints that do not
disturb training (a run saving every step ends where a run saving once does)."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from finevl.data.conversations import Turn, write_conversations
from finevl.train.stic.config import DiftConfig
from finevl.train.stic.dift import train_dift
from finevl.train.stic.prompts import infuse


def test_infuse_puts_the_description_before_the_question():
    assert infuse("How many?", "two red stars") == "Image description:\ntwo red stars\n\nHow many?"


def test_saving_lora_checkpoints_does_not_change_training(world, tiny_lvlm_dir, tmp_path):
    turns = [
        Turn(image=f"images/{k:08d}.png", question="What is the background?", answer="snow") for k in range(6)
    ]
    write_conversations(tmp_path / "i.json", turns)
    weights = []
    for every in (1, 3):
        cfg = DiftConfig(data=str(world), out=str(tmp_path / f"r{every}"), model=tiny_lvlm_dir,
                         instructions=str(tmp_path / "i.json"), examples=6, steps=3, batch_size=2,
                         save_every=every, max_new_tokens=3, warmup_steps=0, lr=1e-2)  # fmt: skip
        summary = train_dift(cfg)
        weights.append(load_file(f"{summary['model']}/model.safetensors"))
    start = load_file(f"{tiny_lvlm_dir}/model.safetensors")
    key = next(k for k in start if "language_model" in k and "q_proj" in k)
    assert not torch.equal(weights[0][key], start[key])  # LoRA trained and was merged
    for k in start:
        torch.testing.assert_close(weights[0][k], weights[1][k], atol=1e-6, rtol=1e-6)
