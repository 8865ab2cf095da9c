"""SCST: baselines, the policy loss, a toy reward that the policy learns, the reward terms."""

from __future__ import annotations

import pytest
import torch

from finevl.data.tokenizer import train_word_tokenizer
from finevl.metrics.captioning import CiderD
from finevl.metrics.clipscore import PREFIX, clip_s
from finevl.models.captioner import new_captioner
from finevl.models.clip import load_clip
from finevl.train.config import ScstConfig
from finevl.train.rewards import CaptionReward, RewardWeights
from finevl.train.scst import advantages, policy_loss, scst_step

CORPUS = ["a red star on snow.", "a blue circle left of a green box.", "two shapes on grass."]


def test_greedy_baseline_and_mean_of_the_others():
    rewards = torch.tensor([[1.0, 3.0], [0.0, 0.0]])
    assert advantages(rewards, torch.tensor([[1.0], [2.0]])).tolist() == [[0.0, 2.0], [-2.0, -2.0]]
    assert advantages(rewards, None).tolist() == [[-2.0, 2.0], [0.0, 0.0]]


def test_policy_loss_pushes_up_samples_with_positive_advantage():
    logp = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    policy_loss(logp, mask, torch.tensor([1.0, -1.0])).backward()
    assert (logp.grad[0, :2] < 0).all() and logp.grad[0, 2] == 0  # descent raises log p
    assert (logp.grad[1] > 0).all()


def test_scst_on_a_toy_reward_moves_the_policy_the_right_way(tmp_path):
    """The reward pays for "star" on even images only, so samples must stay with their image."""
    torch.manual_seed(0)
    tok = train_word_tokenizer(CORPUS, tmp_path / "tok")
    bundle = new_captioner(tok, vision_dim=8, clip_model="x", d_model=32, layers=1, heads=2)
    model = bundle.model.eval()
    cfg = ScstConfig(data="-", out="-", model="-", samples=6, baseline="mean", max_new_tokens=6)
    feats = torch.randn(1, 3, 8).repeat(8, 1, 1) * torch.tensor([1.0, -1.0] * 4)[:, None, None]
    even = torch.arange(8) % 2 == 0

    def star_on_even(idx: list[int], captions: list[str]) -> dict[str, torch.Tensor]:
        said = torch.tensor([float("star" in c.lower()) for c in captions])
        return {"reward": torch.where(even[idx], said, 1 - said)}

    def star_rates() -> tuple[float, float]:
        torch.manual_seed(1)
        with torch.no_grad():
            ids = model.generate_ids(feats, "sample", max_new_tokens=6, num_return_sequences=20)
        said = torch.tensor([float("star" in c.lower()) for c in bundle.decode(ids)]).view(8, 20).mean(1)
        return said[even].mean().item(), said[~even].mean().item()

    even_before, odd_before = star_rates()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss, stats = scst_step(bundle, star_on_even, feats, list(range(8)), cfg)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert "sample/length" in stats and stats["seconds/reward"] >= 0
    even_after, odd_after = star_rates()
    assert even_after - odd_after > even_before - odd_before + 0.4


def test_samples_never_contain_special_tokens(tmp_path):
    torch.manual_seed(0)
    tok = train_word_tokenizer(CORPUS, tmp_path / "tok")
    bundle = new_captioner(tok, vision_dim=8, clip_model="x", d_model=32, layers=1, heads=2)
    ids = bundle.model.eval().generate_ids(
        torch.randn(4, 3, 8), "sample", max_new_tokens=12, num_return_sequences=25
    )
    special = set(tok.all_special_ids) - {tok.eos_token_id}
    for row in ids[:, 1:].tolist():
        body = row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
        assert not special & set(body)


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return load_clip("finevl-tiny-vit").eval()


def test_reward_terms_match_their_metrics_and_empty_captions_score_zero(clip):
    image_emb = clip.embed_pixels(torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8))
    refs = [["a red star on snow", "a star"], ["a blue circle", "two shapes on grass"]]
    reward = CaptionReward(clip, image_emb, refs, RewardWeights(clip_s=2.0, cider=1.0, refclip=0.5))
    captions = ["a red star", "", "a blue circle on grass"]
    out = reward([0, 1, 1], captions)
    want_clip = clip_s(image_emb[[0, 1]], clip.embed_texts([PREFIX + captions[0], PREFIX + captions[2]]))
    assert torch.allclose(out["CLIP-S"][[0, 2]], want_clip, atol=1e-6)
    want_cider = CiderD(refs).score([captions[0], captions[2]], [refs[0], refs[1]])
    assert torch.allclose(out["CIDEr-D"][[0, 2]], torch.tensor(want_cider).float(), atol=1e-6)
    assert out["reward"][1] == 0 and out["CLIP-S"][1] == 0
    total = 2.0 * out["CLIP-S"] + 1.0 * out["CIDEr-D"] + 0.5 * out["RefCLIP-S"]
    assert torch.allclose(out["reward"], total)
