"""Precision and compilation chosen by what the device can do (capability queries mocked on a CPU)."""

import warnings

import pytest
import torch

from llmcourse import precision as P
from llmcourse.lm import BigramConfig, BigramLM
from llmcourse.training import TrainConfig, train

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


@pytest.fixture
def gpu(monkeypatch):
    """Pretend to be a CUDA GPU: ``gpu(bf16=..., capability=..., triton=...)``."""

    def make(bf16=True, capability=(8, 0), triton=True):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
        monkeypatch.setattr(P, "_has_triton", lambda: triton)

    return make


def test_auto_is_bf16_on_an_ampere_gpu_fp16_on_a_t4_fp32_on_cpu_and_mps(gpu):
    gpu(bf16=True)
    assert P.resolve_precision("auto", CUDA) == "bf16"
    gpu(bf16=False, capability=(7, 5))  # Colab's T4
    assert P.resolve_precision("auto", CUDA) == "fp16"
    assert P.resolve_precision("auto", CPU) == "fp32"
    assert P.resolve_precision("auto", torch.device("mps")) == "fp32"
    assert P.resolve_precision("fp32", CUDA) == "fp32"


def test_impossible_requests_say_what_to_use_instead(gpu):
    gpu(bf16=False)
    with pytest.raises(ValueError, match="fp16"):
        P.resolve_precision("bf16", CUDA)
    with pytest.raises(ValueError, match="CUDA"):
        P.resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="choose"):
        P.resolve_precision("half", CPU)
    assert P.resolve_precision("bf16", CPU) == "bf16"  # asked for explicitly: CPU autocast supports it


def test_only_fp16_gets_a_gradient_scaler():
    assert P.grad_scaler("fp32", CPU) is None and P.grad_scaler("bf16", CUDA) is None
    assert P.grad_scaler("fp16", CPU) is None
    if torch.cuda.is_available():
        assert isinstance(P.grad_scaler("fp16", CUDA), torch.amp.GradScaler)


def test_autocast_contexts():
    x = torch.randn(4, 4)
    with P.autocast("bf16", CPU):
        assert (x @ x).dtype == torch.bfloat16
    with P.autocast("fp32", CPU):
        assert (x @ x).dtype == torch.float32


def test_compile_only_where_it_works(gpu):
    gpu(capability=(8, 0), triton=True)
    assert P.resolve_compile("auto", CUDA) is True and P.resolve_compile(True, CUDA) is True
    assert P.resolve_compile(False, CUDA) is False
    gpu(capability=(6, 1), triton=True)  # a Pascal GPU: Inductor's Triton kernels need 7.0
    assert P.resolve_compile("auto", CUDA) is False
    gpu(capability=(7, 5), triton=False)
    with pytest.warns(UserWarning, match="Triton"):
        assert P.resolve_compile(True, CUDA) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" falls back silently
        assert P.resolve_compile("auto", CPU) is False
    with pytest.warns(UserWarning, match="eagerly"):
        assert P.resolve_compile(True, CPU) is False


def test_a_cpu_run_trains_in_bf16_when_asked_and_records_its_precision():
    torch.manual_seed(0)
    model = BigramLM(BigramConfig(vocab_size=20, d_model=8))
    data = [(torch.randint(0, 20, (4, 6)), torch.randint(0, 20, (4, 6))) for _ in range(3)]
    history = train(model, data, None, TrainConfig(max_steps=3, precision="bf16", progress=False), device="cpu")
    assert history.precision == "bf16" and history.steps == 3
    with pytest.raises(ValueError, match="CUDA"):
        train(model, data, None, TrainConfig(max_steps=1, precision="fp16", progress=False), device="cpu")
