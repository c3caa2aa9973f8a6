import pytest
import torch

from llmcourse import config


def test_quick_flag(monkeypatch):
    monkeypatch.setenv("LLMCOURSE_QUICK", "1")
    assert config.is_quick() and config.by_mode(quick=1, cpu=2, gpu=3) == 1
    monkeypatch.setenv("LLMCOURSE_QUICK", "0")
    assert not config.is_quick()
    assert config.by_mode(quick=1, cpu=2, gpu=3, device=torch.device("cpu")) == 2
    assert config.by_mode(quick=1, cpu=2, gpu=3, device=torch.device("cuda")) == 3
    monkeypatch.setenv("LLMCOURSE_QUICK", "maybe")
    with pytest.raises(ValueError, match="LLMCOURSE_QUICK"):
        config.is_quick()


def test_device_choice(monkeypatch):
    monkeypatch.delenv("LLMCOURSE_DEVICE", raising=False)
    assert config.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("LLMCOURSE_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            config.get_device("cuda")


def test_seed_everything_repeats():
    config.seed_everything(7)
    a = torch.randn(3)
    config.seed_everything(7)
    assert torch.equal(a, torch.randn(3))


def test_cache_dir_is_checkout_data(monkeypatch):
    monkeypatch.delenv("LLMCOURSE_CACHE", raising=False)
    assert config.cache_dir().name == "data" and (config.cache_dir() / "README.md").is_file()
    monkeypatch.setenv("LLMCOURSE_CACHE", "/tmp/elsewhere")
    assert str(config.cache_dir()) == "/tmp/elsewhere"
