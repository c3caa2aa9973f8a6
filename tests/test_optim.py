"""llmcourse.optim: Adam written from scratch equals torch.optim.Adam and AdamW step for step."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.lm import BigramConfig, BigramLM
from llmcourse.optim import ScratchAdam, adam_step


def _model() -> nn.Module:
    torch.manual_seed(123)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _batches(n: int = 8):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(16, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g))
            for _ in range(n)]


def _max_differences(ours, theirs, make_ours, make_theirs, batches) -> list[float]:
    """Train both models on the same batches; the largest parameter difference after each step."""
    opt_ours, opt_theirs = make_ours(ours.parameters()), make_theirs(theirs.parameters())
    out = []
    for x, y in batches:
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        out.append(max((p - q).abs().max().item() for p, q in zip(ours.parameters(), theirs.parameters())))
    return out


@pytest.mark.parametrize("kwargs", [
    {},  # the defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, amsgrad False
    {"lr": 3e-2, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 1e-2, "weight_decay": 0.1},  # Adam's L2 penalty: weight_decay * param added to the gradient
])
def test_scratch_adam_equals_torch_adam(kwargs):
    ours = _model()
    theirs = copy.deepcopy(ours)
    start = [p.detach().clone() for p in ours.parameters()]
    diffs = _max_differences(ours, theirs, lambda p: ScratchAdam(p, **kwargs), lambda p: torch.optim.Adam(p, **kwargs),
                             _batches())
    assert max(diffs) < 1e-12, diffs
    moved = max((p - s).abs().max().item() for p, s in zip(ours.parameters(), start))
    assert moved > 1e-3  # the parameters really moved: the equality is not that of two idle models


@pytest.mark.parametrize("weight_decay", [0.01, 0.5])
def test_decoupled_weight_decay_equals_torch_adamw(weight_decay):
    ours = _model()
    theirs = copy.deepcopy(ours)
    diffs = _max_differences(
        ours, theirs, lambda p: ScratchAdam(p, lr=1e-2, weight_decay=weight_decay, decoupled_weight_decay=True),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=weight_decay), _batches())
    assert max(diffs) < 1e-12, diffs


def test_adam_and_adamw_differ_when_weight_decay_is_on():
    ours = _model()
    theirs = copy.deepcopy(ours)
    diffs = _max_differences(ours, theirs, lambda p: ScratchAdam(p, lr=1e-2, weight_decay=0.5),
                             lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.5), _batches())
    assert diffs[-1] > 1e-4  # L2 in the gradient is not decoupled decay


def test_parameter_groups_and_the_bigram_model():
    """The course's own model, with train()'s groups (no decay on biases), in float64."""
    torch.manual_seed(0)
    ours = BigramLM(BigramConfig(vocab_size=50, d_model=8)).double()
    theirs = copy.deepcopy(ours)

    def groups(model):
        return [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.01},
                {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]

    opt_ours = ScratchAdam(groups(ours), lr=1e-2, decoupled_weight_decay=True)
    opt_theirs = torch.optim.AdamW(groups(theirs), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x, y = torch.randint(0, 50, (4, 7), generator=g), torch.randint(0, 50, (4, 7), generator=g)
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
            opt.step()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-12)


def test_a_parameter_without_gradient_is_left_alone():
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt = ScratchAdam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert torch.equal(b.detach(), torch.ones(3)) and b not in opt.state
    assert torch.allclose(a.detach(), torch.full((3,), 0.9))  # the first step is lr * sign(g)
    assert opt.state[a]["step"] == 1


def test_adam_step_by_hand():
    """Two steps of the formulas, computed on paper, for one number."""
    p, m, v = torch.tensor([1.0], dtype=torch.float64), torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    adam_step(p, torch.tensor([2.0], dtype=torch.float64), m, v, 1, lr=0.1, eps=0.0)
    assert torch.allclose(m, torch.tensor([0.2], dtype=torch.float64)) and torch.allclose(v, torch.tensor([0.004], dtype=torch.float64))
    assert torch.allclose(p, torch.tensor([0.9], dtype=torch.float64))  # m_hat = 2, v_hat = 4: step lr * 2 / 2
    adam_step(p, torch.tensor([-1.0], dtype=torch.float64), m, v, 2, lr=0.1, eps=0.0)
    m_hat, v_hat = (0.9 * 0.2 - 0.1) / (1 - 0.9 ** 2), (0.999 * 0.004 + 0.001) / (1 - 0.999 ** 2)
    assert torch.allclose(p, torch.tensor([0.9 - 0.1 * m_hat / v_hat ** 0.5], dtype=torch.float64))


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError):
        ScratchAdam([nn.Parameter(torch.ones(1))], lr=-1.0)
    with pytest.raises(ValueError):
        ScratchAdam([nn.Parameter(torch.ones(1))], betas=(0.9, 1.0))


def test_closure_returns_the_loss():
    w = nn.Parameter(torch.tensor([3.0]))
    opt = ScratchAdam([w], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 9.0
    assert w.item() == pytest.approx(2.5)
