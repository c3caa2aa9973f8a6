"""Generation with and without a key-value cache (notebook 06), against the number of new tokens.

Without the cache, :func:`llmcourse.decoding.generate` re-reads the whole sequence at every step, so
``n`` new tokens cost about ``n² / 2`` token-forwards; with ``use_cache=True`` it reads the prompt once
and then one token per step (``n`` token-forwards), at the price of keeping every layer's keys and
values: :func:`llmcourse.transformer.kv_cache_bytes`, checked here against the real tensors. For each
block (GPT-2's, and Llama's with grouped-query attention) and each length, the script times greedy
generation both ways from the same random-weight model and prompt, checks that both give the same
tokens, and reports the speed-up and the cache's memory.

Run under the course's CPU lock:  flock /tmp/llmcourse-cpu.lock .venv/bin/python benchmarks/kv_cache.py
Saves benchmarks/results/kv_cache.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from llmcourse.config import get_device, seed_everything
from llmcourse.decoding import generate
from llmcourse.transformer import TransformerConfig, TransformerLM, kv_cache_bytes

from _common import save, stamp  # benchmarks/_common.py


def model_config(block: str, args: argparse.Namespace) -> TransformerConfig:
    sizes = dict(max_context=args.prompt + max(args.lengths), d_model=args.d_model, n_layers=args.layers,
                 n_heads=args.heads)
    if block == "llama":
        return TransformerConfig.llama(args.vocab, n_kv_heads=args.kv_heads, **sizes)
    return TransformerConfig(args.vocab, dropout=0.0, attn_dropout=0.0, **sizes)


def timed_generate(model: TransformerLM, prompt: torch.Tensor, new: int, use_cache: bool, repeats: int,
                   device: torch.device) -> tuple[float, torch.Tensor]:
    """The best of ``repeats`` wall-clock times of a greedy generation, and its tokens."""
    best, out = float("inf"), None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = generate(model, prompt, new, temperature=0, use_cache=use_cache)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128, 256, 512], help="new tokens")
    parser.add_argument("--blocks", nargs="+", choices=["gpt2", "llama"], default=["gpt2", "llama"])
    parser.add_argument("--prompt", type=int, default=16, help="prompt length in tokens")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2, help="key/value heads of the Llama block")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per point (the best is kept)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: steadier figures on a shared machine); 0 = PyTorch's default")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "kv_cache.json"))
    args = parser.parse_args(argv)

    device = get_device()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, configs = [], {}
    print(f"{'block':>6} {'new':>5} {'no cache s':>11} {'cache s':>9} {'speed-up':>9} {'cache MiB':>10} "
          f"{'weights MiB':>12}")
    for block in args.blocks:
        seed_everything(0)
        config = model_config(block, args)
        configs[block] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()}
        model = TransformerLM(config).to(device).eval()
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        prompt = torch.randint(0, args.vocab, (args.batch, args.prompt), device=device)
        generate(model, prompt, 8, temperature=0, use_cache=True)  # warm-up: first calls allocate
        generate(model, prompt, 8, temperature=0)
        for new in args.lengths:
            plain_s, plain = timed_generate(model, prompt, new, False, args.repeats, device)
            cached_s, cached = timed_generate(model, prompt, new, True, args.repeats, device)
            if not torch.equal(plain, cached):
                raise AssertionError(f"{block}, {new} new tokens: the cache changed the generated tokens")
            positions = args.prompt + new - 1  # the last token is produced, never read
            cache = model.new_cache()
            with torch.no_grad():
                model(cached[:, :positions], cache=cache)
            real = sum(layer.nbytes for layer in cache)
            formula = kv_cache_bytes(config, args.batch, positions, next(model.parameters()).dtype)
            if real != formula:
                raise AssertionError(f"kv_cache_bytes gives {formula} bytes, the tensors hold {real}")
            rows.append({"block": block, "new_tokens": new, "cached_positions": positions,
                         "seconds_without_cache": plain_s, "seconds_with_cache": cached_s,
                         "speedup": plain_s / cached_s, "tokens_per_second_without_cache": new / plain_s,
                         "tokens_per_second_with_cache": new / cached_s, "cache_bytes": real,
                         "weight_bytes": weight_bytes, "same_tokens": True})
            print(f"{block:>6} {new:>5} {plain_s:>11.3f} {cached_s:>9.3f} {plain_s / cached_s:>8.1f}x "
                  f"{real / 2**20:>10.2f} {weight_bytes / 2**20:>12.2f}")
    result = stamp("kv_cache", device, threads=torch.get_num_threads(),
                   setup={"batch": args.batch, "prompt_tokens": args.prompt, "decoding": "greedy",
                          "dtype": "float32", "weights": "random initialisation (timing does not depend on them)",
                          "repeats": args.repeats, "statistic": "seconds: best of repeats, after a warm-up",
                          "cache_bytes": "keys and values of every layer after the last step, = kv_cache_bytes"},
                   model_configs=configs, rows=rows)
    save(result, args.out, echo=False)
    return result


if __name__ == "__main__":
    main()
