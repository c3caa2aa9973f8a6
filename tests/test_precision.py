"""Precision and compilation chosen by what the device can do (capability queries mocked on a CPU)."""

import warnings

import pytest
import torch

from llmcourse import precision as P
from llmcourse.lm import BigramConfig, BigramLM
from llmcourse.training import TrainConfig, train

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


GPUS = {(7, 5): "Tesla T4", (8, 0): "NVIDIA A100-SXM4-40GB", (9, 0): "NVIDIA H100 80GB HBM3"}


@pytest.fixture
def gpu(monkeypatch):
    """Pretend to be a CUDA GPU of a compute ``capability``: ``gpu(capability=..., triton=...)``.

    ``torch.cuda.is_bf16_supported()`` answers True on every one of them, as it does on a real T4 (it
    counts emulated bf16 by default): the course must ask the capability instead."""

    def make(bf16=None, capability=(8, 0), triton=True):
        if bf16 is not None:  # the older tests' way to ask for a GPU without bf16
            capability = (8, 0) if bf16 else (7, 5)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: GPUS.get(capability, "some GPU"))
        monkeypatch.setattr(torch.version, "hip", None)
        monkeypatch.setattr(P, "_has_triton", lambda: triton)

    return make


@pytest.mark.parametrize("capability, kind, precision, compiled", [
    ((7, 5), "gpu-fp16", "fp16", False),  # Colab's free T4: emulated bf16 only
    ((8, 0), "gpu", "bf16", True),  # A100
    ((9, 0), "gpu", "bf16", True),  # H100
])
def test_the_recipe_kind_precision_and_scaler_follow_the_capability(gpu, monkeypatch, capability, kind, precision,
                                                                   compiled):
    from llmcourse.recipes import recipe_for, recipe_kind

    gpu(capability=capability)
    monkeypatch.delenv("LLMCOURSE_QUICK", raising=False)
    assert recipe_kind(CUDA) == kind
    recipe = recipe_for("transformer", device=CUDA)
    assert recipe.kind == kind and P.resolve_precision(recipe.train.precision, CUDA) == precision
    assert P.resolve_precision("auto", CUDA) == precision
    assert P.resolve_compile(recipe.train.compile, CUDA) is compiled
    scaler = P.grad_scaler(precision, CUDA)
    assert (scaler is not None) == (precision == "fp16")
    why = P.explain_precision(CUDA)
    assert why.startswith(precision) and GPUS[capability] in why and ".".join(map(str, capability)) in why


def test_an_apple_gpu_and_a_cpu_train_in_fp32_and_say_why(monkeypatch):
    monkeypatch.delenv("LLMCOURSE_QUICK", raising=False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    from llmcourse.recipes import recipe_kind

    mps = torch.device("mps")
    assert recipe_kind(mps) == "cpu" and P.resolve_precision("auto", mps) == "fp32"
    assert P.grad_scaler("fp32", mps) is None and P.resolve_compile("auto", mps) is False
    assert "Apple GPU" in P.explain_precision(mps) and "CPU" in P.explain_precision(CPU)
    assert P.explain_precision(CPU, "bf16") == "bf16 (asked for)"


def test_a_t4_compiles_only_when_asked(gpu):
    gpu(capability=(7, 5))
    assert P.resolve_compile("auto", CUDA) is False and P.resolve_compile(True, CUDA) is True


def test_describe_prints_the_precision_and_why(capsys):
    from llmcourse.config import describe

    info = describe()
    assert info["precision"] == P.explain_precision(torch.device(info["device"].split()[0]))
    assert "precision:" in capsys.readouterr().out


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
