"""--device and --dtype: resolved once, refused in one line when the hardware is not there,
and inference results come back to the CPU in float32 whatever the placement."""

from __future__ import annotations

import json
import os

import pytest
import torch

from finevl.errors import FinevlError
from finevl.models.clip import load_clip
from finevl.models.device import cpu_has_fast_bf16, placement, resolve_device, resolve_dtype
from finevl.train.config import resolve_precision
from tests.test_cli import assert_one_line_error, run

GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="no CUDA GPU on this machine")


def _cpu_bf16(monkeypatch, amx: bool, avx512_bf16: bool) -> None:
    """This CPU as PyTorch would report one with or without each bf16 unit."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)


@pytest.mark.parametrize(("amx", "avx512_bf16"), [(True, True), (True, False), (False, True)])
def test_auto_is_bf16_on_a_cpu_with_fast_bf16(monkeypatch, amx, avx512_bf16):
    _cpu_bf16(monkeypatch, amx, avx512_bf16)
    assert cpu_has_fast_bf16()
    assert placement("cpu", "auto") == (torch.device("cpu"), torch.bfloat16)
    assert resolve_precision("auto") == ("bf16" if not GPU else resolve_precision("auto"))
    assert resolve_precision("auto", cpu_auto="fp32") == ("fp32" if not GPU else "bf16")


def test_auto_is_fp32_on_a_cpu_without_fast_bf16(monkeypatch):
    _cpu_bf16(monkeypatch, False, False)
    assert not cpu_has_fast_bf16()
    assert placement("cpu", "auto") == (torch.device("cpu"), torch.float32)
    if not GPU:
        assert resolve_precision("auto") == "fp32"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # accelerate launch --mixed_precision
    assert resolve_precision("auto") == "bf16"


def test_fp32_is_one_flag_away_and_explicit_names_are_kept(monkeypatch):
    _cpu_bf16(monkeypatch, True, True)
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16") == torch.bfloat16 and resolve_dtype(" Float16 ") == torch.float16
    with pytest.raises(FinevlError, match="--precision must be one of auto, fp32"):
        resolve_precision("fp8")


def test_auto_is_the_gpu_when_there_is_one():
    device, dtype = placement("auto", "auto")
    assert device.type == ("cuda" if GPU else "cpu")
    if GPU:
        assert dtype in (torch.bfloat16, torch.float16)


def test_bf16_on_a_cpu_without_it_runs_with_one_warning(monkeypatch, caplog):
    import finevl.models.device as device

    _cpu_bf16(monkeypatch, False, False)
    monkeypatch.setattr(device, "_warned_slow_bf16", False)
    with caplog.at_level("WARNING", logger="finevl.models.device"):
        assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
        assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    assert [r.getMessage() for r in caplog.records] == [
        "this CPU has no fast bf16 (no AMX or AVX512-BF16): bfloat16 runs, slowly"
    ]


@pytest.mark.parametrize(("device", "needle"), [("tpu", "not one of"), ("cuda:x", "not one of")])
def test_bad_device_names_are_refused(device, needle):
    with pytest.raises(FinevlError, match=needle):
        resolve_device(device)
    with pytest.raises(FinevlError, match="not one of"):
        resolve_dtype("int8")


@pytest.mark.skipif(GPU, reason="checks the message on a machine without a GPU")
def test_a_gpu_that_is_not_there_is_one_clear_error():
    with pytest.raises(FinevlError, match="no CUDA GPU"):
        resolve_device("cuda:0")


@pytest.mark.parametrize("preset", ["finevl-tiny-vit", "hf-tiny-vit"])
def test_bfloat16_embeddings_come_back_as_cpu_float32_near_the_fp32_ones(preset):
    torch.manual_seed(0)
    full = load_clip(preset)
    half = load_clip(preset, dtype=torch.bfloat16)
    half.load_state_dict({k: v.to(torch.bfloat16) for k, v in full.state_dict().items()})
    assert half.dtype == torch.bfloat16
    images = torch.randint(0, 255, (4, 3, 64, 64), dtype=torch.uint8)
    texts = ["a red star on snow", "two blue circles", "a striped square", "grass"]
    for a, b in (
        (full.embed_pixels(images), half.embed_pixels(images)),
        (full.embed_texts(texts), half.embed_texts(texts)),
    ):
        assert b.dtype == torch.float32 and b.device.type == "cpu"
        assert torch.nn.functional.cosine_similarity(a, b).min() > 0.98


def test_commands_take_device_and_dtype(world, tmp_path, capsys, monkeypatch):
    base = ["clip", "zeroshot", "--model", "finevl-tiny-vit", "--world", str(world), "--label", "background"]
    base += ["--split", "train"]
    code, out, err = run([*base, "--device", "cpu", "--dtype", "bfloat16"], capsys, monkeypatch)
    assert code == 0, err
    assert sum(map(sum, json.loads(out)["confusion"])) == 48
    assert json.loads(out)["dtype"] == "bfloat16"  # the results record what ran
    _cpu_bf16(monkeypatch, False, False)
    code, out, err = run([*base, "--device", "cpu"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["dtype"] == "float32"  # auto, on a CPU without fast bf16
    code, _, err = run([*base, "--dtype", "int4"], capsys, monkeypatch)
    assert_one_line_error(code, err, "--dtype")
    if not GPU:
        code, _, err = run([*base, "--device", "cuda"], capsys, monkeypatch)
        assert_one_line_error(code, err, "no CUDA GPU")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("preset", ["finevl-tiny-vit", "finevl-tiny-conv", "hf-tiny-vit"])
def test_a_clip_embeds_on_the_gpu_in_bfloat16(preset):
    clip = load_clip(preset, device="cuda", dtype=torch.bfloat16)
    feats = clip.embed_texts(["a red star"])
    assert feats.device.type == "cpu" and torch.isfinite(feats).all()
    pixels = torch.randint(0, 255, (2, 3, clip.image_size, clip.image_size), dtype=torch.uint8)
    assert torch.isfinite(clip.embed_pixels(pixels)).all()


def test_cpu_inference_uses_the_free_cores_and_gives_the_threads_back(monkeypatch):
    from finevl.models import device

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(device, "free_cores", lambda: 1)  # another process holds a core
        with device.threads_for_load():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(device, "free_cores", lambda: 8)  # never more than torch's setting
        with device.threads_for_load():
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_free_cores_reads_the_run_queue(tmp_path, monkeypatch):
    from finevl.models import device

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(device, "_own_running_threads", lambda: 1)
    for running, free in (("1", 4), ("2", 3), ("9", 1)):  # this process's own task is one of them
        (tmp_path / "loadavg").write_text(f"0.50 0.40 0.30 {running}/345 1234\n")
        monkeypatch.setattr(device, "LOADAVG", str(tmp_path / "loadavg"))
        assert device.free_cores() == free
    monkeypatch.setattr(device, "LOADAVG", str(tmp_path / "missing"))
    assert device.free_cores() == 4  # no run queue to read: every core
