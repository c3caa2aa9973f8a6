"""One stated model protocol (llmcourse.protocols): the course's models follow it, the loop's helpers are the
ones every file uses, and no file reaches into another's private names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import llmcourse
from llmcourse import protocols
from llmcourse.heads import lm_loss
from llmcourse.rnn import RNNLM, RNNConfig
from llmcourse.transformer import TransformerConfig, TransformerLM

ROOT = Path(__file__).resolve().parent.parent


def _rnn(**kw) -> RNNLM:
    return RNNLM(RNNConfig(vocab_size=50, d_embed=8, d_hidden=8, n_layers=1, cell="lstm", **kw))


def _gpt(**kw) -> TransformerLM:
    return TransformerLM(TransformerConfig(vocab_size=50, max_context=16, d_model=16, n_layers=1, n_heads=2, **kw))


def test_the_course_models_are_language_models_and_only_the_transformer_caches():
    rnn, gpt = _rnn(), _gpt()
    assert isinstance(rnn, protocols.LanguageModel) and isinstance(gpt, protocols.LanguageModel)
    assert isinstance(gpt, protocols.Cacheable) and not isinstance(rnn, protocols.Cacheable)
    assert protocols.is_stateful(rnn) and not protocols.is_stateful(gpt)
    assert protocols.max_context(rnn) is None and protocols.max_context(gpt) == 16
    assert not isinstance(nn.Linear(2, 2), protocols.LanguageModel)


@pytest.mark.parametrize("tied", [True, False])
def test_num_parameters_leaves_out_the_embeddings_alike_in_both_models(tied):
    rnn = _rnn(tie_weights=tied)
    total = sum(p.numel() for p in rnn.parameters())
    untied_head = 0 if tied else rnn.head.linear.weight.numel()
    assert rnn.num_parameters() == total
    assert rnn.num_parameters(non_embedding=True) == total - rnn.embed.weight.numel() - untied_head
    gpt = _gpt(tie_weights=tied)
    total = sum(p.numel() for p in gpt.parameters())
    untied_head = 0 if tied else gpt.head.linear.weight.numel()
    assert gpt.num_parameters(non_embedding=True) == (total - gpt.tok_embed.weight.numel()
                                                      - gpt.pos_embed.weight.numel() - untied_head)


def test_forward_step_default_loss_and_detach_state_are_the_loops():
    x = torch.randint(0, 50, (2, 5))
    rnn, gpt, plain = _rnn(), _gpt(), nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 50))
    output, state = protocols.forward_step(rnn, x)
    assert output.shape == (2, 5, 50) and len(state) == 2
    again, _ = protocols.forward_step(rnn, x, protocols.detach_state(state))
    assert again.shape == output.shape and all(s.grad_fn is None for s in protocols.detach_state(state))
    assert protocols.forward_step(gpt, x)[1] is None
    assert protocols.forward_step(plain, x, stateful=False)[0].shape == (2, 5, 50)
    assert protocols.default_loss(rnn) == rnn.loss_fn and protocols.default_loss(plain) is lm_loss
    assert protocols.detach_state(None) is None
    assert torch.equal(protocols.scores(plain, output), output)  # no log_probs: the output is the logits
    assert torch.allclose(protocols.scores(rnn, output).exp().sum(-1), torch.ones(2, 5))


def _python_files() -> list[Path]:
    return [*sorted((ROOT / "llmcourse").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py")),
            *sorted((ROOT / "tools").glob("*.py")), ROOT / "course.py"]


def test_no_file_imports_another_files_private_names():
    """`from .training import _forward` and the like: a private name is its own file's business."""
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                modules = [part for part in (node.module or "").split(".") if part.startswith("_")
                           and not part.startswith("__")]
                own = path.parent.name == "benchmarks" and node.module == "_common"  # benchmarks' shared module
                if (private or modules) and not own:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module} import "
                                 f"{', '.join(a.name for a in node.names)}")
    assert not found, "\n".join(found)


def test_the_module_map_names_every_module_of_the_package():
    listed = set(re.findall(r"``llmcourse\.(\w+)``", llmcourse.__doc__))
    modules = {p.stem for p in (ROOT / "llmcourse").glob("*.py") if not p.stem.startswith("_")} | {"exercises"}
    assert listed == modules, f"not in the map: {sorted(modules - listed)}; no such module: {sorted(listed - modules)}"


def test_a_scaling_sweep_passes_only_through_the_modules_it_uses():
    """From run_sweep's recipe to the model: Transformers only, so nothing of the RNN, BERT or LoRA is loaded."""
    import subprocess
    import sys

    script = ("import sys, torch; from llmcourse import scaling; sweep = scaling.sweep_for('quick'); "
              "recipe = scaling.sweep_recipe(sweep.sizes[0], sweep.tokens[0], sweep); recipe.model(); "
              "ids = torch.zeros(4096, dtype=torch.long); recipe.loaders({'train': ids, 'valid': ids, 'test': ids}); "
              "print(' '.join(sorted(m for m in sys.modules if m.startswith('llmcourse.'))))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert not {f"llmcourse.{m}" for m in ("rnn", "bert", "finetune", "lora", "weights", "pretrained", "ngram")} & set(loaded)
    assert "llmcourse.transformer" in loaded


def test_no_module_is_over_700_lines_and_no_function_over_60():
    """A file a maintainer can hold in mind, and functions that fit on a screen (docstrings included)."""
    long_files, long_functions = [], []
    for path in sorted((ROOT / "llmcourse").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 700:
            long_files.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                      f"{node.end_lineno - node.lineno + 1} lines")
    assert not long_files and not long_functions, long_files + long_functions
